"""`python -m gatehouse_gateway`: serve gateway (see gatehouse_common.server)."""

from gatehouse_common.server import serve
from gatehouse_gateway.settings import GatewaySettings

if __name__ == "__main__":  # not again in the worker processes, which import this module too
    serve("gatehouse_gateway.main:create_app", GatewaySettings, default_port=8000)
