"""How every service runs: uvicorn with the bounded edge, configured from the service's settings.

Each service's ``__main__`` calls ``serve``, so the command of every image and pod is
``python -m gatehouse_<service> --host 0.0.0.0 --port <port>``. uvicorn still reads
``WEB_CONCURRENCY`` (worker processes, default 1) itself, as it did when the images ran the
``uvicorn`` command. It believes no ``X-Forwarded-*`` header (``proxy_headers=False``, so its
``FORWARDED_ALLOW_IPS`` does nothing): each service decides the client's address itself.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from gatehouse_common.http_edge import BoundedHttpToolsProtocol, EdgeConfig, EdgeLimits
from gatehouse_common.settings import HttpServerSettings, load_settings

# uvicorn's exit status when the server did not start (its own STARTUP_FAILURE).
_STARTUP_FAILURE = 3


def server_config(
    app: Any,
    settings: HttpServerSettings,
    *,
    host: str,
    port: int,
    workers: int | None = None,
    **uvicorn_options: Any,
) -> EdgeConfig:
    """uvicorn's config for ``app`` (an ASGI app, or "module:factory" for a factory)."""
    return EdgeConfig(
        app,
        edge_limits=EdgeLimits.from_settings(settings),
        factory=isinstance(app, str),
        host=host,
        port=port,
        workers=workers,
        http=BoundedHttpToolsProtocol,
        # No service speaks WebSocket: an Upgrade header is ignored, not acted on.
        ws="none",
        lifespan="on",
        # The request-context middleware writes the access log, with secrets redacted.
        access_log=False,
        # No banner naming the server software (RFC 9110 §10.2.4 makes it optional).
        server_header=False,
        # The client address is each service's to decide from its own trusted proxies (the
        # gateway's and auth's ``TRUSTED_PROXIES``). uvicorn's default would first take it from
        # ``X-Forwarded-For`` whenever the peer is 127.0.0.1: any local client, a sidecar's or
        # a host-run gateway's, could pick its address and so its login-throttle key.
        proxy_headers=False,
        timeout_keep_alive=settings.http_keep_alive_seconds,
        timeout_graceful_shutdown=settings.http_graceful_shutdown_seconds,
        **uvicorn_options,
    )


def serve(
    factory: str,
    settings_class: type[HttpServerSettings],
    *,
    default_port: int,
) -> None:
    """Run ``factory`` ("module:create_app") until SIGTERM; exit 3 if it does not start."""
    parser = argparse.ArgumentParser(
        # "gatehouse_auth.main:create_app" is run as `python -m gatehouse_auth`.
        prog=f"python -m {factory.partition(':')[0].removesuffix('.main')}",
        description="Serve the service over HTTP/1.1 with the limits from its settings.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="(default: %(default)s)")
    parser.add_argument("--port", type=int, default=default_port, help="(default: %(default)s)")
    parser.add_argument(
        "--workers", type=int, help="processes (default: uvicorn reads $WEB_CONCURRENCY, else 1)"
    )
    args = parser.parse_args()
    # Read once here so that a bad configuration stops the process before it binds the port.
    settings = load_settings(settings_class)
    config = server_config(factory, settings, host=args.host, port=args.port, workers=args.workers)
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(_STARTUP_FAILURE)
