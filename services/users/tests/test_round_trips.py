"""What a request sends to PostgreSQL besides its statements: the transaction commands and the
pool's ping, seen by asyncpg's query logger (it logs simple queries such as the ping and BEGIN,
not the prepared statements that carry the SELECTs and UPDATEs)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event, update

from gatehouse_users.database import open_database, request_session
from gatehouse_users.models import Profile
from gatehouse_users.profiles import repository
from services.users.tests.support import SettingsFactory


async def test_a_read_that_stands_alone_sends_no_begin_and_a_single_ping(
    make_settings: SettingsFactory,
) -> None:
    sent: list[str] = []

    def log_queries(dbapi_connection: Any, _: object) -> None:
        def record(query: Any) -> None:  # asyncpg's LoggedQuery (asyncpg has no types)
            sent.append(query.query.strip())

        dbapi_connection.driver_connection.add_query_logger(record)

    async with open_database(make_settings(db_pool_size=1, db_max_overflow=0)) as database:
        event.listen(database.engine.sync_engine, "connect", log_queries)
        profile_id = uuid.uuid4()
        for _ in range(2):  # the second read takes the pooled connection: pinged first
            async with (
                request_session(database, "/test") as db,
                db.outside_transaction() as session,
            ):
                assert await repository.get(session, profile_id) is None
        reads = list(sent)
        sent.clear()
        async with request_session(database, "/test") as db:
            await db.session.execute(update(Profile).where(Profile.id == profile_id).values(bio=""))
        writes = list(sent)

    assert reads == [";"]
    # The same logger sees a transaction's commands, so the assertion above can fail.
    # (asyncpg sends the COMMIT without logging it.)
    assert writes == [";", "BEGIN ISOLATION LEVEL READ COMMITTED;"]
