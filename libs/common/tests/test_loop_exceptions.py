"""A running app's loop logs a failed name lookup that a cancelled connect abandoned (uvloop)
as a warning, and still reports every other unretrieved exception at error level."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from gatehouse_common.app import ServiceInfo, create_app
from gatehouse_common.settings import ServiceSettings
from gatehouse_testing.app import started

# .invalid never resolves (RFC 6761), with or without a DNS server: the lookup always fails.
UNRESOLVABLE = "gatehouse-datastore.invalid"


async def _abandon_failing_lookups() -> None:
    """What asyncpg and redis-py do when their connect timeout ends a connect to a container
    whose name no longer resolves: the connect is cancelled while uvloop is resolving."""
    loop = asyncio.get_running_loop()
    for _ in range(3):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0):
                await loop.create_connection(asyncio.Protocol, UNRESOLVABLE, 5432)


async def _leave_an_unretrieved_bug() -> None:
    asyncio.get_running_loop().create_future().set_exception(ValueError("a bug"))


def _logged_in_an_app(
    capsys: pytest.CaptureFixture[str], scenario: Callable[[], Awaitable[None]]
) -> list[dict[str, object]]:
    """Run ``scenario`` on uvloop (as uvicorn does) while an app runs; the JSON log lines of
    the loop's reports once the abandoned futures are collected."""

    async def run() -> None:
        app = create_app(ServiceInfo(name="test", title="test", version="0"), ServiceSettings())
        async with started(app):
            await scenario()
            await asyncio.sleep(1)  # the lookups fail in uvloop's resolver threads
            gc.collect()  # a future reports its unretrieved exception when collected
            await asyncio.sleep(0)

    capsys.readouterr()
    uvloop.run(run())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]
    return [
        line
        for line in lines
        if line.get("logger") in {"asyncio", "gatehouse_common.loop_exceptions"}
    ]


def test_an_abandoned_failed_lookup_is_a_warning_with_its_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reports = _logged_in_an_app(capsys, _abandon_failing_lookups)

    assert reports, "uvloop no longer leaves the lookup unretrieved: drop the handler"
    assert [report["level"] for report in reports] == ["warning"] * len(reports)
    assert {report["message"] for report in reports} == {"dns_lookup_abandoned"}
    assert "uvloop#590" in str(reports[0]["reason"])


def test_any_other_unretrieved_exception_is_still_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reports = _logged_in_an_app(capsys, _leave_an_unretrieved_bug)

    assert [report["level"] for report in reports] == ["error"]
    assert "Future exception was never retrieved" in str(reports[0]["message"])
