"""Prometheus metrics of the event channel. Alerts and dashboards use these exact names."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_PUBLISHED = Counter(
    "events_published_total", "Events appended to a stream (XADD succeeded).", ["stream"]
)
EVENTS_HANDLED = Counter(
    "events_handled_total",
    "Events a consumer group's handler completed (duplicates skipped are not counted).",
    ["stream", "group"],
)
EVENTS_FAILED = Counter(
    "events_failed_total",
    "Handler attempts that raised or timed out; the entry is retried.",
    ["stream", "group"],
)
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered_total",
    "Entries moved to the dead-letter stream (too many deliveries, or unreadable).",
    ["stream", "group"],
)
EVENTS_CONSUMER_LAG = Gauge(
    "events_consumer_lag",
    "Entries the group has not acknowledged yet: pending plus not yet delivered.",
    ["stream", "group"],
)
EVENTS_CHANNEL_UP = Gauge(
    "events_channel_up",
    "1 while this component's last Redis call on the event channel succeeded, else 0.",
    ["component"],
)
