"""The gate's stall check on a healthy PostgreSQL: its connection is open before it is needed,
and a statement that is only slow is left alone (a frozen one: test_frozen_postgres.py)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from gatehouse_testing.plugin import Eventually
from gatehouse_users.database import open_database, request_session
from services.users.tests.support import SettingsFactory


async def test_the_probe_connects_at_start_not_in_its_first_stall_check(
    make_settings: SettingsFactory, eventually: Eventually
) -> None:
    async with open_database(make_settings()) as database:
        pool = database.probe_engine.pool
        assert isinstance(pool, QueuePool)
        await eventually(lambda: pool.checkedin() == 1)
        assert not database.gate.is_open


async def test_a_statement_slower_than_the_stall_bound_on_a_healthy_database_completes(
    make_settings: SettingsFactory,
) -> None:
    # One pooled connection, held by the slow request: the check must not need the pool.
    settings = make_settings(db_stall_seconds=0.2, db_pool_size=1, db_max_overflow=0)
    async with open_database(settings) as database:
        async with request_session(database, "/test") as db:
            # Three stall bounds: a check runs, finds PostgreSQL answering, and lets it finish.
            result = await db.session.execute(text("select pg_sleep(0.6), 42"))
            assert result.one()[1] == 42
        assert not database.gate.is_open
