"""The event loop's handler of errors nobody retrieved: an abandoned DNS lookup is a warning.

uvloop's ``create_connection`` resolves the host in a future of its own and does not cancel
it when the connect itself is cancelled, by asyncpg's or redis-py's connect timeout
(MagicStack/uvloop#590, open). If the lookup then fails, as it does for the name of a Compose
container that was stopped or killed, nobody retrieves its exception, and asyncio logs
"Future exception was never retrieved" at error level, with no traceback of ours, several
times per datastore outage. The connect's own failure has been handled already (a 503, the
gate); the lookup's is the same outage seen a second time. So exactly that case (an
unretrieved ``socket.gaierror``) is logged as a warning saying why, and every other
exception the loop reports goes to the handler that was there before (asyncio's default:
error level), since anything else unretrieved may be a bug.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gatehouse_common.logging import get_logger

_log = get_logger(__name__)
_UNRETRIEVED = "Future exception was never retrieved"


def _is_abandoned_dns_lookup(context: dict[str, Any]) -> bool:
    return (
        context.get("message") == _UNRETRIEVED
        and "future" in context
        and isinstance(context.get("exception"), socket.gaierror)
    )


@asynccontextmanager
async def abandoned_dns_lookups_as_warnings() -> AsyncIterator[None]:
    """Install the handler on the running loop for the block; the previous one is restored
    after."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _is_abandoned_dns_lookup(context):
            _log.warning(
                "dns_lookup_abandoned",
                error=str(context["exception"]),
                reason="a cancelled connect left its failed name lookup unretrieved "
                "(uvloop#590); the connect's own failure was handled",
            )
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)
