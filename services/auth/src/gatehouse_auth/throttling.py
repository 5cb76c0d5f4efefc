"""Login throttling: failed password logins per email and per client address, in Redis.

Each key is a sorted set of failure times (a sliding window). While a key holds ``limit``
failures younger than the window, the password grant is refused — also for the right
password — and ``Retry-After`` says when the oldest of them leaves the window.

The same counter limits other abusable requests per email and address (forgot-password,
resend-verification): each gets its own instance with its own ``counter`` name.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable

from redis.asyncio import Redis


class LoginThrottle:
    def __init__(  # noqa: PLR0913 - keyword-only limits, from settings
        self,
        redis: Redis,
        *,
        prefix: str,
        max_failures_per_email: int,
        max_failures_per_address: int,
        window_seconds: int,
        counter: str = "login-failures",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}{counter}:"
        self._email_limit = max_failures_per_email
        self._address_limit = max_failures_per_address
        self._window = window_seconds
        self._clock = clock

    def _keys(self, email: str, address: str) -> list[tuple[str, int]]:
        # The email is hashed so Redis holds no address book of who tried to log in.
        email_digest = hashlib.sha256(email.encode()).hexdigest()
        return [
            (f"{self._prefix}email:{email_digest}", self._email_limit),
            (f"{self._prefix}address:{address}", self._address_limit),
        ]

    async def retry_after(self, email: str, address: str) -> int | None:
        """Seconds until a login may be tried again, or None if it may be tried now."""
        now = self._clock()
        keys = self._keys(email, address)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, _ in keys:
                pipe.zremrangebyscore(key, "-inf", now - self._window)
                pipe.zrange(key, 0, -1, withscores=True)
            results = await pipe.execute()
        waits: list[float] = []
        for (_, limit), failures in zip(keys, results[1::2], strict=True):
            if len(failures) >= limit:
                # The window frees when enough old failures age out to drop below the limit.
                freeing = sorted(score for _, score in failures)[len(failures) - limit]
                waits.append(freeing + self._window - now)
        if not waits:
            return None
        return max(1, math.ceil(max(waits)))

    async def record_failure(self, email: str, address: str) -> None:
        now = self._clock()
        member = f"{now:.6f}:{secrets.token_hex(4)}"
        async with self._redis.pipeline(transaction=True) as pipe:
            for key, _ in self._keys(email, address):
                pipe.zadd(key, {member: now})
                pipe.expire(key, self._window + 1)
            await pipe.execute()

    async def clear_email(self, email: str) -> None:
        """A successful login wipes that email's failures (the address's count stays)."""
        key, _ = self._keys(email, "")[0]
        await self._redis.delete(key)
