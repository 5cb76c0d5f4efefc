"""The garbage collector is set for serving while an app runs, and released after it."""

from __future__ import annotations

import gc
from collections.abc import Callable

from fastapi import FastAPI

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
