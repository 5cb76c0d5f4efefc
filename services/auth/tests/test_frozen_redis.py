"""Auth's throttling Redis frozen (``docker pause``): within the first second the gate's stall
check notices it (the logins in flight do not wait for their own timeout), after it every login
gets its 503 at once, refresh and registration go on, and logins work again within seconds of
the unpause (issue 18's targets).
"""

from __future__ import annotations

import asyncio
import time

from testcontainers.community.redis import RedisContainer

from gatehouse_auth.main import create_app
from gatehouse_testing import containers
from gatehouse_testing.problems import assert_problem
from gatehouse_testing.targets import FAST_ANSWER_SECONDS, NOTICE_SECONDS, RECOVERY_SECONDS
from services.auth.tests.support import AuthApi, SettingsFactory, running

FROZEN_SECONDS = 3.5
COMMAND_TIMEOUT = 5.0
# Between two logins of one client: an immediate 503 involves no I/O, and a client that
# never paused would hold the event loop from the requests it runs beside.
PAUSE_SECONDS = 0.01


async def test_frozen_throttle_redis_fails_logins_fast_and_recovers(
    dedicated_redis: RedisContainer, make_settings: SettingsFactory
) -> None:
    # Only the throttles' Redis is frozen; the event channel stays on the session's Redis.
    # A command timeout far beyond the first second: only the stall check can be in time.
    settings = make_settings(
        redis_url=containers.redis_url(dedicated_redis), redis_timeout_seconds=COMMAND_TIMEOUT
    )
    async with running(create_app(settings)) as client:
        api = AuthApi(client)
        email = (await api.register())["email"]
        tokens = await api.tokens(email)
        # (seconds after the freeze the login began, its duration, its status)
        logins: list[tuple[float, float, int]] = []

        async def keep_logging_in(since: float) -> None:
            while time.perf_counter() - since < FROZEN_SECONDS:
                began = time.perf_counter()
                response = await api.login(email)
                logins.append((began - since, time.perf_counter() - began, response.status_code))
                if response.status_code == 503:
                    assert assert_problem(response, 503)["dependency"] == "redis"
                await asyncio.sleep(PAUSE_SECONDS)

        container = dedicated_redis.get_wrapped_container()
        container.pause()
        try:
            frozen_at = time.perf_counter()
            await asyncio.gather(*(keep_logging_in(frozen_at) for _ in range(3)))
            # Refresh needs no Redis; registration's throttle fails open.
            refreshed = await api.refresh(tokens["refresh_token"])
            assert refreshed.status_code == 200, refreshed.text
            await api.register()
        finally:
            container.unpause()
        back_at = time.perf_counter()
        while (login := await api.login(email)).status_code != 200:
            assert_problem(login, 503)
            assert time.perf_counter() - back_at < RECOVERY_SECONDS, "Redis back, logins not"
            await asyncio.sleep(0.1)

    waited = max(took for _, took, _ in logins)
    assert waited < NOTICE_SECONDS, f"a login waited {waited:.2f} s for the frozen Redis"
    late = [login for login in logins if login[0] >= NOTICE_SECONDS]
    assert len(late) > 10
    assert {status for _, _, status in late} == {503}
    slow = [login for login in late if login[1] > FAST_ANSWER_SECONDS]
    assert not slow, f"slow logins after the first second (began, took, status): {slow}"
