"""Each way an upstream can fail maps to the status the contract gives it."""

from __future__ import annotations

import pytest

from gatehouse_gateway.exchange import problem_for
from gatehouse_gateway.routing import Upstream
from gatehouse_gateway.upstream import Failure

USERS = Upstream(name="users", prefix="/users", base_url="http://users:8002")


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (Failure.CONNECT, 502),  # refused: nothing listens
        (Failure.CONNECT_TIMEOUT, 503),  # unreachable (e.g. its name no longer resolves)
        (Failure.BROKEN, 502),  # hung up after the request went out
        (Failure.TIMEOUT, 504),  # accepted but answered too slowly
    ],
)
def test_unreachable_is_502_or_503_and_only_slow_is_504(failure: Failure, status: int) -> None:
    problem = problem_for(failure, USERS)

    assert problem.status == status
    assert "users" in problem.detail
