"""`python -m gatehouse_users`: serve users (see gatehouse_common.server)."""

from gatehouse_common.server import serve
from gatehouse_users.settings import UsersSettings

if __name__ == "__main__":  # not again in the worker processes, which import this module too
    serve("gatehouse_users.main:create_app", UsersSettings, default_port=8002)
