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


class PayloadTooLarge(ProblemError):
    status = 413
    problem_type = f"{PROBLEM_TYPE_BASE}payload-too-large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes.")


class BadRequest(ProblemError):
    status = 400
    problem_type = f"{PROBLEM_TYPE_BASE}bad-request"
