"""Open a Redis gate the moment Redis closes its connections, not when a request next needs it.

A Redis that is killed closes every connection it holds at once, but a client learns of it only
when it next sends a command on one. A service that uses its Redis rarely learned it late and
at a request's expense: auth's throttles are touched only by password logins, registrations and
email requests (2 % of the chaos run's traffic), so after a kill the first login found its
pooled connection dead, reconnected, and waited for the connect timeout (1 s: the killed
container's name no longer resolves) before its failure opened the gate.

``RedisConnectionWatch`` holds one connection of its own in a blocking read (``BLPOP`` on a key
nobody writes, sent again every ``BLOCK_SECONDS`` so that no proxy on the way takes it for
idle). The server's close reaches that read at once and opens the gate, before any request
needs Redis. It never opens the gate on a timing: a connect that fails or is slow (Redis still
away, a busy machine), or a read with no answer well past its block (a frozen Redis, a
connection a network dropped without a word), only makes it start again on a new connection an
interval later, so a loop that lags cannot refuse logins while Redis is healthy. A connection
closed by something else than Redis's death (an operator's ``CLIENT KILL``) opens the gate for
one interval, until its probe finds Redis answering. A frozen Redis closes nothing: the gate's
stall check is what notices that.

A service whose requests use Redis all the time (users' profile cache, read by most requests)
learns of a kill from its traffic within milliseconds, and needs no watch.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gatehouse_common.availability import AvailabilityGate
from gatehouse_common.events.background import raise_if_cancelled
from gatehouse_common.logging import get_logger

_log = get_logger(__name__)

# Each BLPOP returns after this long (nil) and is sent again: traffic often enough that no
# idle timeout of a proxy or a NAT on the way closes the connection and opens the gate.
BLOCK_SECONDS = 30.0
# How much longer than the block an answer may take before the connection is taken for dead
# (a network that dropped it without a word, a frozen Redis) and replaced, without opening the
# gate: a blocking read with no bound would wait on such a connection for good, and the watch
# would miss every later kill.
ANSWER_MARGIN_SECONDS = 10.0


class RedisConnectionWatch:
    """A background loop (``run_in_background``) that opens ``gate`` when Redis closes the
    watch's connection.

    ``key`` is a list nobody pushes to, among the service's own keys (its Redis account needs
    ``BLPOP`` on it). ``connect_timeout_seconds`` bounds each connect; between attempts, and
    after the connection was lost, the watch waits ``retry_interval_seconds``. Each ``BLPOP``
    blocks ``block_seconds``.
    """

    def __init__(  # noqa: PLR0913 - the connection's figures are keyword-only
        self,
        redis_url: str,
        gate: AvailabilityGate,
        *,
        key: str,
        client_name: str,
        connect_timeout_seconds: float,
        retry_interval_seconds: float,
        block_seconds: float = BLOCK_SECONDS,
    ) -> None:
        self.name = f"watch {gate.dependency} connection"
        self._gate = gate
        self._key = key
        self._retry_interval = retry_interval_seconds
        self._block_seconds = block_seconds
        self._client = Redis.from_url(
            redis_url,
            single_connection_client=True,
            client_name=client_name,
            socket_connect_timeout=connect_timeout_seconds,
            # A live Redis answers each BLPOP within its block: only a dead connection or a
            # frozen Redis outlasts the margin.
            socket_timeout=block_seconds + ANSWER_MARGIN_SECONDS,
            # A lost connection is the news itself, not something to retry.
            retry=Retry(NoBackoff(), 0),
        )

    async def run(self) -> None:
        try:
            while True:
                if not await self._hold():
                    return
                await asyncio.sleep(self._retry_interval)
        finally:
            await self._client.aclose()

    async def _hold(self) -> bool:
        """Connect, then block until the connection is lost; False if Redis refuses the watch."""
        try:
            await self._client.ping()  # a connect that fails or times out says nothing new
        except (RedisError, OSError):
            raise_if_cancelled()
            return True
        try:
            while True:
                await self._client.blpop([self._key], timeout=self._block_seconds)
        except RedisTimeoutError:
            # No answer long past the block: frozen (the gate's stall check judges that) or a
            # connection dropped silently. Not a verdict; a new connection, an interval later.
            raise_if_cancelled()
            return True
        except RedisConnectionError as exc:
            raise_if_cancelled()
            if not self._gate.is_open:
                _log.warning(
                    "dependency_connection_closed",
                    dependency=self._gate.dependency,
                    error=type(exc).__name__,
                )
            self._gate.failed()
            return True
        except RedisError as exc:
            # NoPermissionError: the account does not allow BLPOP on the key. The gate still
            # opens on the requests' own failures; a person has to fix the account.
            _log.error("connection_watch_refused", dependency=self._gate.dependency, error=str(exc))
            return False
