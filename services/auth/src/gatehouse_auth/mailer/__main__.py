"""`python -m gatehouse_auth.mailer`: serve the email worker (see gatehouse_common.server)."""

from gatehouse_auth.settings import EmailWorkerSettings
from gatehouse_common.server import serve

if __name__ == "__main__":  # not again in the worker processes, which import this module too
    serve("gatehouse_auth.mailer.main:create_app", EmailWorkerSettings, default_port=8003)
