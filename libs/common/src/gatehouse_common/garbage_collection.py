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
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Allocations (net of deallocations) between young collections; CPython's default is 700.
# Garbage cycles wait longer to be freed: a few more thousand objects at most.
YOUNG_COLLECTION_THRESHOLD = 10_000


@contextmanager
def collector_set_for_serving() -> Iterator[None]:
    """Freeze what exists now and collect the young generation less often, for the block.

    Enter it once start-up is done. The threshold stays raised after the block (a process
    setting, like the log configuration); what was frozen is collectable again after it, so
    a process that runs one app after another (the tests) keeps nothing.
    """
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
