"""Throttling in Redis: failed logins per email and per client address, registrations per address.

Each counter is a sorted set of event times (a sliding window). A request *reserves* its
place in every counter it is subject to before any work is done, in one Lua script, so that
concurrent requests cannot all pass a check made before any of them was counted: of 30 wrong
passwords for one email sent at once, 5 reserve a place and have their password checked, and
25 are refused. While a counter holds its limit of events younger than the window, requests
are refused, and ``Retry-After`` says when enough of the oldest leave the window.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gatehouse_auth.metrics import LOGIN_THROTTLED, REGISTRATION_THROTTLED
from gatehouse_common.availability import AvailabilityGate
from gatehouse_common.logging import get_logger
from gatehouse_common.problems import PROBLEM_TYPE_BASE, DependencyUnavailable, ProblemError

_log = get_logger(__name__)


class LoginThrottled(ProblemError):
    status = 429
    problem_type = f"{PROBLEM_TYPE_BASE}login-throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many failed logins; try again later.",
            headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
        )


class RegistrationThrottled(ProblemError):
    status = 429
    problem_type = f"{PROBLEM_TYPE_BASE}registration-throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many registrations from this address; try again later.",
            headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
        )


# KEYS: the counters; ARGV: window seconds, a unique member, then one limit per key.
# Either every counter gets the member and the answer is {0, now}, or none does and the answer
# is {index (1-based) of the counter that frees last, seconds until it does}. Times are the
# Redis server's clock, so every auth replica and every request orders events on one clock.
_RESERVE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local window = tonumber(ARGV[1])
local refused, wait = 0, 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 + i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local freeing = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local seconds = tonumber(freeing[2]) + window - now
    if refused == 0 or seconds > wait then
      refused, wait = i, seconds
    end
  end
end
if refused > 0 then
  return {refused, tostring(wait)}
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('EXPIRE', key, window + 1)
end
return {0, string.format('%.17g', now)}
"""


@dataclass(frozen=True, slots=True)
class WindowLimit:
    """One sliding-window counter: its Redis key, and how many events it may hold."""

    key: str
    limit: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """A place taken in some counters: ``member``, added to each at ``at`` (Redis server time)."""

    member: str
    at: float


class WindowFull(Exception):
    def __init__(self, counter: WindowLimit, retry_after: int) -> None:
        super().__init__(counter.key)
        self.counter = counter
        self.retry_after = retry_after


def is_redis_outage(error: Exception) -> bool:
    """Redis could not be reached or did not answer in time: opens the throttles' gate."""
    return isinstance(error, RedisConnectionError | RedisTimeoutError)


class SlidingWindows:
    """Sliding-window counters in Redis whose places are reserved atomically.

    Reservations pass ``gate``, shared by every counter on this Redis: after Redis failed to
    answer, they raise ``DependencyUnavailable`` at once until the gate's probe finds it back,
    so a frozen Redis costs one timeout to the requests in flight, not one to every login.
    """

    def __init__(self, redis: Redis, *, window_seconds: int, gate: AvailabilityGate) -> None:
        self._redis = redis
        self._window = window_seconds
        self._reserve = redis.register_script(_RESERVE)
        self._gate = gate

    async def reserve(self, counters: Sequence[WindowLimit]) -> Reservation:
        """Take a place in every counter, or raise ``WindowFull`` and take none."""
        member = secrets.token_hex(16)
        async with self._gate.passage(is_redis_outage):
            refused, value = await self._reserve(
                keys=[counter.key for counter in counters],
                args=[self._window, member, *(counter.limit for counter in counters)],
            )
        if int(refused):
            retry_after = max(1, math.ceil(float(value)))
            raise WindowFull(counters[int(refused) - 1], retry_after)
        return Reservation(member=member, at=float(value))

    async def give_back(
        self, reservation: Reservation, keys: Sequence[str], *, clearing: Sequence[str] = ()
    ) -> None:
        """Remove a reservation that turned out not to count from ``keys``, and from each key
        of ``clearing`` every event up to it as well; in one transaction. Through the gate
        too: a login that got its place just before Redis froze must not wait out its timeout
        here once the gate knows."""
        async with (
            self._gate.passage(is_redis_outage),
            self._redis.pipeline(transaction=True) as pipe,
        ):
            for key in clearing:
                pipe.zremrangebyscore(key, "-inf", reservation.at)
            for key in keys:
                pipe.zrem(key, reservation.member)
            await pipe.execute()


LimitName = Literal["email", "address"]


class LoginAttempt:
    """One password check, with its places reserved in the email's and the address's counters.

    Call ``failed()`` when the password is wrong (the reservation stays: it is the failure) or
    ``await succeeded()`` when it is right. An attempt left without either, by an exception or
    a cancellation (a datastore outage, a busy hasher), gives its places back: it checked
    nothing, so it is not a failure.
    """

    def __init__(
        self, windows: SlidingWindows, reservation: Reservation, email_key: str, address_key: str
    ) -> None:
        self._windows = windows
        self._reservation = reservation
        self._email_key = email_key
        self._address_key = address_key
        self.settled = False

    def failed(self) -> None:
        self.settled = True

    async def succeeded(self) -> None:
        """Clear the email's failures up to now, and free this attempt's place of the address.

        The address's earlier failures stay: an attacker who owns one account must not be
        able to reset the counter of the address they are guessing from.
        """
        self.settled = True
        await self._windows.give_back(
            self._reservation, [self._email_key, self._address_key], clearing=[self._email_key]
        )

    async def abandon(self) -> None:
        try:
            await self._windows.give_back(self._reservation, [self._email_key, self._address_key])
        except (RedisError, OSError, DependencyUnavailable) as exc:
            # The places stay taken until the window passes: failing closed, and the error
            # that ended the attempt is the one the client hears about.
            _log.warning("login_reservation_not_returned", error=type(exc).__name__)


class LoginThrottle:
    """Failed password logins per email and per client address.

    Every endpoint that checks a password (the password grant, and a password change's
    ``current_password``: ``TokenIssuer.check_password``) runs the check inside ``attempt()``.
    """

    def __init__(
        self,
        windows: SlidingWindows,
        *,
        prefix: str,
        max_failures_per_email: int,
        max_failures_per_address: int,
    ) -> None:
        self._windows = windows
        self._prefix = prefix
        self._email_limit = max_failures_per_email
        self._address_limit = max_failures_per_address

    @asynccontextmanager
    async def attempt(self, email: str, address: str) -> AsyncIterator[LoginAttempt]:
        """Reserve a failure for ``email`` and ``address``, or raise ``LoginThrottled`` (429)."""
        # The email is hashed so Redis holds no address book of who tried to log in.
        email_digest = hashlib.sha256(email.encode()).hexdigest()
        limits: dict[LimitName, WindowLimit] = {
            "email": WindowLimit(
                f"{self._prefix}login-failures:email:{email_digest}", self._email_limit
            ),
            "address": WindowLimit(
                f"{self._prefix}login-failures:address:{address}", self._address_limit
            ),
        }
        try:
            reservation = await self._windows.reserve(list(limits.values()))
        except WindowFull as full:
            limit = next(name for name, counter in limits.items() if counter == full.counter)
            LOGIN_THROTTLED.labels(limit).inc()
            _log.info(
                "login_throttled", limit=limit, retry_after=full.retry_after, client_address=address
            )
            raise LoginThrottled(full.retry_after) from None
        attempt = LoginAttempt(
            self._windows, reservation, limits["email"].key, limits["address"].key
        )
        try:
            yield attempt
        finally:
            if not attempt.settled:
                await attempt.abandon()


class RegistrationThrottle:
    """Registrations per client address. Fails open: with Redis down, registration goes on,
    still bounded by the password hasher's queue (login fails closed instead, see docs)."""

    def __init__(self, windows: SlidingWindows, *, prefix: str, max_per_address: int) -> None:
        self._windows = windows
        self._prefix = prefix
        self._limit = max_per_address

    async def check(self, address: str) -> None:
        """Count a registration from ``address``, or raise ``RegistrationThrottled`` (429)."""
        counter = WindowLimit(f"{self._prefix}registrations:address:{address}", self._limit)
        try:
            await self._windows.reserve([counter])
        except WindowFull as full:
            REGISTRATION_THROTTLED.inc()
            _log.info(
                "registration_throttled", retry_after=full.retry_after, client_address=address
            )
            raise RegistrationThrottled(full.retry_after) from None
        except (RedisError, OSError, DependencyUnavailable) as exc:
            _log.warning("registration_throttle_unavailable", error=type(exc).__name__)


class EmailRequestThrottle:
    """Requests of one kind that send an email (forgot-password, resend-verification), per
    email and per client address. Every request counts, answered or not; each kind has its own
    ``counter`` name. Fails closed: with Redis down the request is refused (503), as no email
    may go out unthrottled."""

    def __init__(
        self,
        windows: SlidingWindows,
        *,
        prefix: str,
        counter: str,
        max_per_email: int,
        max_per_address: int,
    ) -> None:
        self._windows = windows
        self._prefix = f"{prefix}{counter}:"
        self._email_limit = max_per_email
        self._address_limit = max_per_address

    async def count(self, email: str, address: str) -> None:
        """Count a request for ``email`` from ``address``, or raise ``WindowFull``."""
        # Hashed like the login counters: Redis holds no address book.
        email_digest = hashlib.sha256(email.encode()).hexdigest()
        await self._windows.reserve(
            [
                WindowLimit(f"{self._prefix}email:{email_digest}", self._email_limit),
                WindowLimit(f"{self._prefix}address:{address}", self._address_limit),
            ]
        )
