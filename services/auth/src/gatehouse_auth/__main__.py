"""`python -m gatehouse_auth`: serve auth (see gatehouse_common.server)."""

from gatehouse_auth.settings import AuthSettings
from gatehouse_common.server import serve

if __name__ == "__main__":  # not again in the worker processes, which import this module too
    serve("gatehouse_auth.main:create_app", AuthSettings, default_port=8001)
