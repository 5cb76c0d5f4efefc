"""``USERS_CACHE_ENABLED=false``: every read goes to PostgreSQL and Redis is never contacted."""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client import REGISTRY

from services.users.tests.support import AppStarter, Authorizer, SettingsFactory

# Nothing listens here: were the cache used, every command would fail and be counted.
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def cache_metrics() -> dict[str, float]:
    return {
        name: metric(name) for name in ("users_cache_hits_total", "users_cache_misses_total")
    } | {
        f"{name}:{operation}": metric(name, operation=operation)
        for name in ("users_cache_errors_total", "users_cache_bypassed_total")
        for operation in ("read", "fill", "invalidate")
    }


def test_the_cache_is_on_by_default(make_settings: SettingsFactory) -> None:
    assert make_settings().cache_enabled is True
    assert make_settings(cache_enabled="false").cache_enabled is False


async def test_reads_and_writes_go_to_the_database_only(
    make_settings: SettingsFactory, start_app: AppStarter, auth: Authorizer
) -> None:
    settings = make_settings(cache_enabled=False, redis_url=UNREACHABLE_REDIS)
    subject = uuid.uuid4()
    async with start_app(settings) as client:
        assert (await client.get("/users/me", headers=auth(subject))).status_code == 200
        before = cache_metrics()
        statements = metric("users_db_statements_per_request_sum", route="/users/{profile_id}")

        first = await client.get(f"/users/{subject}", headers=auth())
        second = await client.get(f"/users/{subject}", headers=auth())
        changed = await client.patch("/users/me", headers=auth(subject), json={"bio": "new"})
        after_write = await client.get(f"/users/{subject}", headers=auth())

    assert [r.status_code for r in (first, second, changed, after_write)] == [200] * 4
    assert after_write.json()["bio"] == "new"
    # Both reads of the same profile reached PostgreSQL: nothing was served from a cache.
    read_statements = metric("users_db_statements_per_request_sum", route="/users/{profile_id}")
    assert read_statements - statements >= 3
    unchanged: dict[str, Any] = cache_metrics()
    assert unchanged == before
