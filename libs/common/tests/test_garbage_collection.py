"""The garbage collector is set for serving while an app runs, and released after it."""

from __future__ import annotations

import gc
from collections.abc import Callable

from fastapi import FastAPI
from prometheus_client import REGISTRY

from gatehouse_common.garbage_collection import YOUNG_COLLECTION_THRESHOLD
from gatehouse_testing.app import started


async def test_start_up_objects_are_frozen_while_the_app_runs(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app()

    async with started(app):
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD

    assert gc.get_freeze_count() == 0


def _pauses(generation: int) -> float:
    count = REGISTRY.get_sample_value(
        "python_gc_pause_seconds_count", {"generation": str(generation)}
    )
    return count or 0.0


async def test_every_collection_is_timed_while_the_app_runs(
    make_app: Callable[..., FastAPI],
) -> None:
    async with started(make_app()):
        before = _pauses(2)
        gc.collect()
        assert _pauses(2) == before + 1
        paused = REGISTRY.get_sample_value("python_gc_pause_seconds_sum", {"generation": "2"})
        assert paused is not None
        assert paused > 0

    gc.collect()  # after the app: no longer timed
    assert _pauses(2) == before + 1
