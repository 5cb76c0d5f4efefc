"""JSON logs through structlog, with secrets redacted before anything is written.

Both structlog and standard-library loggers (uvicorn, libraries) end up as one JSON object per
line on stdout with ``time``, ``level``, ``service`` and the bound ``request_id``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

REDACTED = "[REDACTED]"

# Keys whose values are never logged, matched anywhere in the key, case-insensitively.
_SECRET_KEY = re.compile(
    r"password|passwd|token|secret|authorization|cookie|api_?key|private_key|credential",
    re.IGNORECASE,
)
# Values that look like bearer credentials or JWTs are scrubbed wherever they appear.
_SECRET_VALUE = re.compile(
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"
    r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
)
_MAX_DEPTH = 6


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    # Cached: every request logs the same few keys, and this runs for each of them.
    return _SECRET_KEY.search(key) is not None


_SCALARS = (int, float, bool, type(None))
# Fields the logging set-up itself fills with values it made (the request id is validated
# before it is bound): skipping them keeps the per-request access line cheap.
_GENERATED_FIELDS = frozenset(
    {"time", "level", "service", "logger", "request_id", "status", "duration_ms", "method"}
)


def _redact(value: Any, depth: int = 0) -> Any:
    if type(value) is str:
        return _SECRET_VALUE.sub(REDACTED, value)
    if isinstance(value, _SCALARS) or depth > _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED if _is_secret_key(str(key)) else _redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item, depth + 1) for item in value]
    if isinstance(value, str):  # a str subclass, such as an enum member
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: blank secret-named keys and credential-looking strings."""
    for key, value in event_dict.items():
        if key in _GENERATED_FIELDS:
            continue
        event_dict[key] = REDACTED if _is_secret_key(key) else _redact(value)
    return event_dict


@dataclass
class _LoggingState:
    service: str = "unknown"
    level: int = logging.INFO


# Module state rather than closures: structlog caches bound loggers on first use, and tests
# (and the CLIs) configure logging more than once per process.
_state = _LoggingState()
_write_lock = threading.Lock()
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _drop_below_level(_: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    if _LEVELS.get(method_name, logging.INFO) < _state.level:
        raise structlog.DropEvent
    return event_dict


def _add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("service", _state.service)
    return event_dict


def _add_logger_name(logger: WrappedLogger, _: str, event_dict: EventDict) -> EventDict:
    name = getattr(logger, "name", None)
    if name:
        event_dict["logger"] = name
    return event_dict


def _rename_event(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict["message"] = event_dict.pop("event", "")
    return event_dict


class _StdoutLogger:
    """structlog's output: one line to whatever ``sys.stdout`` is at that moment.

    Looked up per line so that redirection (pytest's capture) is followed; written directly
    rather than through the ``logging`` module, which costs several times more per line.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        with _write_lock:
            sys.stdout.write(message + "\n")
            sys.stdout.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at emit time, so redirection (pytest) is followed."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


_ENRICH: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    _add_service,
    # Tracebacks as data, without frame locals: a local variable may hold a password.
    structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    ),
]
# One encoder for every line: ``json.dumps`` with any option set builds a new encoder per call.
# ``repr`` is what structlog's own fallback gives the values we log (UUIDs, enums, paths).
_ENCODER = json.JSONEncoder(default=repr)


def _to_json(event_dict: EventDict, **_: Any) -> str:
    # JSONRenderer passes its own ``default``; ours is bound in the encoder.
    return _ENCODER.encode(event_dict)


_RENDER: list[Processor] = [
    redact_secrets,
    _rename_event,
    structlog.processors.JSONRenderer(serializer=_to_json),
]


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route structlog and standard logging to one JSON line per event on stdout.

    Our own loggers (structlog) render directly; standard-library loggers (uvicorn,
    libraries) go through the same enrichment, redaction and rendering.
    """
    _state.service = service
    _state.level = logging.getLevelName(level)
    structlog.configure(
        processors=[_drop_below_level, _add_logger_name, *_ENRICH, *_RENDER],
        logger_factory=_StdoutLogger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *_ENRICH],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_RENDER],
    )
    handler = _StdoutHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Our middleware writes the access line; uvicorn's own would duplicate it unredacted.
    logging.getLogger("uvicorn.access").handlers.clear()
    logging.getLogger("uvicorn.access").propagate = False
    # Client libraries log every request URL at INFO; a URL may carry a credential. PyMongo
    # logs whole commands at DEBUG: documents with password hashes and emailed tokens.
    for name in ("httpx2", "httpx", "httpcore", "httpcore2", "pymongo"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger


def bind_log_context(**values: Any) -> None:
    """Add fields to every log line of the current request."""
    structlog.contextvars.bind_contextvars(**values)


def scope_state(scope: MutableMapping[str, Any]) -> dict[str, Any]:
    """The per-request state dict shared by ``Request.state`` and pure ASGI middleware."""
    state: dict[str, Any] = scope.setdefault("state", {})
    return state
