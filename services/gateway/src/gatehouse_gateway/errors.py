"""Problem types of the gateway's own answers (upstream failures, refused request bodies)."""

from __future__ import annotations

from gatehouse_common.problems import PROBLEM_TYPE_BASE, ProblemError


class BadGateway(ProblemError):
    status = 502
    problem_type = f"{PROBLEM_TYPE_BASE}upstream-unreachable"


class UpstreamUnavailable(ProblemError):
    status = 503
    problem_type = f"{PROBLEM_TYPE_BASE}upstream-unavailable"


class GatewayTimeout(ProblemError):
    status = 504
    problem_type = f"{PROBLEM_TYPE_BASE}upstream-timeout"


# A refused body may be partly unread: the connection closes after the answer rather than
# being parsed on from the middle of that body.
_CLOSE = {"Connection": "close"}


class PayloadTooLarge(ProblemError):
    status = 413
    problem_type = f"{PROBLEM_TYPE_BASE}payload-too-large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes.", headers=_CLOSE)


class RequestTimeout(ProblemError):
    status = 408
    title = "Request Timeout"
    problem_type = f"{PROBLEM_TYPE_BASE}request-timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The request body did not arrive within {seconds:g} seconds.", headers=_CLOSE
        )


class BadRequest(ProblemError):
    status = 400
    problem_type = f"{PROBLEM_TYPE_BASE}bad-request"
