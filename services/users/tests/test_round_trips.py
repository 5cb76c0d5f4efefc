"""What a request sends to PostgreSQL besides its statements: the transaction commands and the
pool's ping, seen by asyncpg's query logger (it logs simple queries such as the ping and BEGIN,
not the prepared statements that carry the SELECTs and UPDATEs), and what the ping is for."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import event, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gatehouse_common.problems import DependencyUnavailable
from gatehouse_users.database import Database, open_database, request_session
from gatehouse_users.models import Profile
from gatehouse_users.profiles import repository
from services.users.tests.support import SettingsFactory

IDLE_SECONDS = 0.2


def log_simple_queries(database: Database) -> list[str]:
    """The simple queries sent on connections opened from now on."""
    sent: list[str] = []

    def log_queries(dbapi_connection: Any, _: object) -> None:
        def record(query: Any) -> None:  # asyncpg's LoggedQuery (asyncpg has no types)
            sent.append(query.query.strip())

        dbapi_connection.driver_connection.add_query_logger(record)

    event.listen(database.engine.sync_engine, "connect", log_queries)
    return sent


async def read_alone(database: Database, profile_id: uuid.UUID) -> None:
    async with (
        request_session(database, "/test") as db,
        db.outside_transaction() as connection,
    ):
        assert await repository.read(connection, profile_id) is None


async def test_a_read_that_stands_alone_sends_no_begin_and_a_connection_just_used_no_ping(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(db_pool_size=1, db_max_overflow=0, db_pool_ping_after_idle_seconds=60)
    async with open_database(settings) as database:
        sent = log_simple_queries(database)
        profile_id = uuid.uuid4()
        for _ in range(2):  # the second read takes the pooled connection
            await read_alone(database, profile_id)
        reads = list(sent)
        sent.clear()
        async with request_session(database, "/test") as db:
            await db.session.execute(update(Profile).where(Profile.id == profile_id).values(bio=""))
        writes = list(sent)

    assert reads == []
    # The same logger sees a transaction's commands, so the assertion above can fail.
    # (asyncpg sends the COMMIT without logging it.)
    assert writes == ["BEGIN ISOLATION LEVEL READ COMMITTED;"]


async def test_a_connection_idle_for_the_window_is_pinged_before_use(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(
        db_pool_size=1, db_max_overflow=0, db_pool_ping_after_idle_seconds=IDLE_SECONDS
    )
    async with open_database(settings) as database:
        sent = log_simple_queries(database)
        profile_id = uuid.uuid4()
        await read_alone(database, profile_id)  # connects: a new connection needs no ping
        await asyncio.sleep(2 * IDLE_SECONDS)
        await read_alone(database, profile_id)

    assert sent == [";"]


async def backend_pid(database: Database) -> int:
    async with request_session(database, "/test") as db:
        pid: int = (await db.session.execute(text("select pg_backend_pid()"))).scalar_one()
    return pid


@pytest.mark.parametrize(
    ("idle_window_seconds", "read_succeeds"),
    # Pinged after the window: replaced unseen. Trusted within it: the request fails, which
    # is what trusting a recently used connection costs when it broke meanwhile.
    [(IDLE_SECONDS, True), (60, False)],
)
async def test_a_connection_broken_while_idle(
    make_settings: SettingsFactory,
    users_engine: AsyncEngine,
    idle_window_seconds: float,
    read_succeeds: bool,
) -> None:
    settings = make_settings(
        db_pool_size=1, db_max_overflow=0, db_pool_ping_after_idle_seconds=idle_window_seconds
    )
    async with open_database(settings) as database:
        pid = await backend_pid(database)
        async with users_engine.connect() as admin:
            assert (await admin.execute(text(f"select pg_terminate_backend({pid})"))).scalar()
        await asyncio.sleep(2 * IDLE_SECONDS)
        if read_succeeds:
            await read_alone(database, uuid.uuid4())
            assert await backend_pid(database) != pid
        else:
            with pytest.raises(DependencyUnavailable):
                await read_alone(database, uuid.uuid4())
