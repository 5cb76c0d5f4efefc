"""Migrations on an empty database: upgrade head, downgrade base, upgrade head again."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from gatehouse_users.models import Base
from services.users.tests.support import alembic, create_database


async def schema_of(database_url: str) -> tuple[set[str], list[Any]]:
    """The tables of the database, and how they differ from the ORM models."""

    def inspect_schema(connection: Connection) -> tuple[set[str], list[Any]]:
        tables = set(inspect(connection).get_table_names())
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        return tables, differences

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(inspect_schema)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade_on_an_empty_database(postgres_url: str) -> None:
    database_url = await create_database(postgres_url)
    assert (await schema_of(database_url))[0] == set()

    await alembic(database_url, "upgrade", "head")
    tables, differences = await schema_of(database_url)
    assert tables == {"alembic_version", "profiles", "erased_accounts", "outbox"}
    assert differences == []  # the migration builds exactly what the models describe

    await alembic(database_url, "downgrade", "base")
    assert (await schema_of(database_url))[0] == {"alembic_version"}

    await alembic(database_url, "upgrade", "head")
    tables, differences = await schema_of(database_url)
    assert tables == {"alembic_version", "profiles", "erased_accounts", "outbox"}
    assert differences == []
    current = await alembic(database_url, "current")
    assert "0002 (head)" in current.stdout


async def test_offline_mode_prints_the_sql(postgres_url: str) -> None:
    database_url = await create_database(postgres_url)
    printed = await alembic(database_url, "upgrade", "head", "--sql")
    assert "CREATE TABLE profiles" in printed.stdout
    assert "CONSTRAINT pk_profiles PRIMARY KEY (id)" in printed.stdout
    assert (await schema_of(database_url))[0] == set()  # nothing was run
