"""docs/events.md stays true: every event type, with a JSON example its payload model accepts,
and every metric of the kit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import Counter, Gauge

from gatehouse_common.events import metrics, payload_types

EVENTS_DOC = Path(__file__).resolve().parents[3] / "docs" / "events.md"
_SECTION = re.compile(r"^### `([a-z.]+)`.*?\n```json\n(.*?)\n```", re.MULTILINE | re.DOTALL)


def _documented_examples() -> dict[str, str]:
    return dict(_SECTION.findall(EVENTS_DOC.read_text()))


def test_every_event_type_is_documented_and_nothing_else() -> None:
    assert set(_documented_examples()) == set(payload_types())


@pytest.mark.parametrize("event_type", sorted(payload_types()))
def test_documented_example_is_a_valid_payload(event_type: str) -> None:
    example = _documented_examples()[event_type]

    payload = payload_types()[event_type].model_validate(json.loads(example))

    assert json.loads(payload.model_dump_json()).keys() == json.loads(example).keys()


def test_every_metric_is_documented() -> None:
    doc = EVENTS_DOC.read_text()
    names = [
        family.name  # a counter's family name is without its _total suffix
        for metric in vars(metrics).values()
        if isinstance(metric, Counter | Gauge)
        for family in metric.describe()
    ]
    assert names
    for name in names:
        assert f"`{name}" in doc
