"""The request id of the request being handled, readable from anywhere in its task."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"

# Client-chosen ids are echoed into headers and logs: accept only a short, plain token.
_ACCEPTABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

_request_id: ContextVar[str] = ContextVar("request_id", default="")


def current_request_id() -> str:
    return _request_id.get()


def accept_or_generate(candidate: str | None) -> str:
    """Keep a well-formed incoming id so a trace spans services; otherwise make one."""
    if candidate and _ACCEPTABLE_REQUEST_ID.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex


def bind_request_id(request_id: str) -> None:
    _request_id.set(request_id)
