"""Reading redis-py's stream replies (bytes or str, RESP2 lists) as plain ``(id, fields)``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Fields = dict[Any, Any]
Entry = tuple[str, Fields]


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def range_entries(reply: Iterable[Any] | None) -> list[Entry]:
    """Entries of an ``XRANGE`` or ``XAUTOCLAIM`` reply; deleted entries (nil) are left out."""
    return [
        (text(entry_id), fields)
        for entry_id, fields in reply or ()
        if entry_id is not None and fields is not None
    ]


def read_entries(reply: Any) -> list[tuple[str, list[Entry]]]:
    """``(stream, entries)`` pairs of an ``XREAD`` or ``XREADGROUP`` reply (nil on timeout)."""
    pairs = reply.items() if isinstance(reply, dict) else reply or ()
    return [(text(stream), range_entries(entries)) for stream, entries in pairs]
