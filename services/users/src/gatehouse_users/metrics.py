"""Service-specific Prometheus metrics (the shared HTTP metrics come from gatehouse_common)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CACHE_HITS = Counter("users_cache_hits_total", "Profile reads answered from the Redis cache.")
CACHE_MISSES = Counter("users_cache_misses_total", "Profile reads that went to PostgreSQL.")
CACHE_ERRORS = Counter(
    "users_cache_errors_total",
    "Redis commands that failed or timed out; the request went on without the cache.",
    ["operation"],
)
CACHE_BYPASSED = Counter(
    "users_cache_bypassed_total",
    "Cache operations skipped because Redis failed recently (circuit open).",
    ["operation"],
)
DB_STATEMENTS_PER_REQUEST = Histogram(
    "users_db_statements_per_request",
    "SQL statements sent to PostgreSQL by one request, by route template.",
    ["route"],
    buckets=(0, 1, 2, 3, 4, 5, 8, 13, 21),
)
