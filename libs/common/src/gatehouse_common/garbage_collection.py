"""CPython's cyclic garbage collector, set for a service that has started.

A request leaves almost no cyclic garbage (reference counting frees what it allocates), yet
under load the collector took about a fifth of users' CPU per cached read (docs/performance.md):

- every full collection traversed the ~150,000 objects that exist from start-up on (modules,
  the app and its routes, pydantic's schemas) to free nothing of them; ``gc.freeze`` moves them
  out of the collector's generations while the app runs;
- a young collection ran every 700 allocations, scanning the objects of the requests in
  flight only to move them to an older generation, which then had to be scanned too. Every
  10,000, most of a request's objects are freed by reference counting before any collection
  sees them.

A collection holds the whole process, event loop included, for as long as it takes: each one
is timed into ``python_gc_pause_seconds`` (by generation), the one figure that tells a loop
stalled by the collector from one stalled by its own code or by the machine.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Histogram

# Allocations (net of deallocations) between young collections; CPython's default is 700.
# Garbage cycles wait longer to be freed: a few more thousand objects at most.
YOUNG_COLLECTION_THRESHOLD = 10_000

GC_PAUSE = Histogram(
    "python_gc_pause_seconds",
    "How long each cyclic garbage collection held the process, by generation.",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


class _CollectionTimer:
    """A ``gc.callbacks`` entry: the collector calls it at the start and the stop of each
    collection, with the GIL held, so one start time at a time is all it needs."""

    def __init__(self) -> None:
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            GC_PAUSE.labels(str(info["generation"])).observe(time.perf_counter() - self._started)


@contextmanager
def collector_set_for_serving() -> Iterator[None]:
    """Freeze what exists now, collect the young generation less often, and time every
    collection, for the block.

    Enter it once start-up is done. The threshold stays raised after the block (a process
    setting, like the log configuration); what was frozen is collectable again after it, so
    a process that runs one app after another (the tests) keeps nothing.
    """
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
    gc.freeze()
    timer = _CollectionTimer()
    gc.callbacks.append(timer)
    try:
        yield
    finally:
        gc.callbacks.remove(timer)
        gc.unfreeze()
