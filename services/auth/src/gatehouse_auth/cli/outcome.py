"""How an operator command ends: its report on stdout, or ``error: ...`` on stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable


def report(command: Callable[[], str], *failures: type[Exception]) -> int:
    """Run ``command`` and print what it reports: exit status 0. One of the expected
    ``failures`` is printed as ``error: ...`` on stderr: exit status 1 (anything else is a bug,
    and keeps its traceback)."""
    try:
        print(command())
    except failures as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
