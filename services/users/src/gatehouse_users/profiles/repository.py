"""SQL for profiles. Writes take the request's session and leave committing to it; reads that
stand alone take a connection (``RequestSession.outside_transaction``) and return rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Row, bindparam, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gatehouse_users.models import ErasedAccount, Profile

_PROFILES = Profile.__table__
_PROFILE_BY_ID = select(_PROFILES).where(_PROFILES.c.id == bindparam("id"))


async def read(connection: AsyncConnection, profile_id: uuid.UUID) -> Row[Any] | None:
    """The profile's columns, or None."""
    return (await connection.execute(_PROFILE_BY_ID, {"id": profile_id})).one_or_none()


async def lock_account(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Serialise, until the transaction ends, everything that creates or erases this account.

    Creating a profile checks that the account was not erased, then inserts; erasing records
    that, then deletes. Without the lock, a creation whose check ran before an erasure
    committed could insert after the erasure's delete. A transaction-level advisory lock on
    the id: it needs no row (the profile may not exist yet) and is released at commit.
    """
    key = int.from_bytes(user_id.bytes[:8], "big", signed=True)
    await session.execute(select(func.pg_advisory_xact_lock(key)))


async def is_erased(session: AsyncSession, user_id: uuid.UUID) -> bool:
    return await session.get(ErasedAccount, user_id) is not None


async def insert_if_absent(
    session: AsyncSession, profile_id: uuid.UUID, *, email: str | None, display_name: str | None
) -> Profile:
    """The profile with this id, inserted if there is none (call under ``lock_account``).

    ``ON CONFLICT DO NOTHING``: a profile made meanwhile (by the registration event or a
    concurrent first request) wins, and is read by a second statement, whose snapshot
    includes that commit.
    """
    inserted: Profile | None = await session.scalar(
        insert(Profile)
        .values(id=profile_id, email=email, display_name=display_name)
        .on_conflict_do_nothing(index_elements=[Profile.id])
        .returning(Profile)
    )
    if inserted is not None:
        return inserted
    return (
        await session.scalars(
            select(Profile)
            .where(Profile.id == profile_id)
            .execution_options(populate_existing=True)
        )
    ).one()


async def update_existing(
    session: AsyncSession, profile_id: uuid.UUID, changes: dict[str, str]
) -> Profile | None:
    """Apply ``changes`` to an existing profile; None if there is none."""
    updated: Profile | None = await session.scalar(
        update(Profile)
        .where(Profile.id == profile_id)
        .values(**changes, updated_at=func.now())
        .returning(Profile)
        .execution_options(populate_existing=True)
    )
    return updated


async def upsert(
    session: AsyncSession,
    profile_id: uuid.UUID,
    *,
    email: str | None,
    display_name: str | None,
    changes: dict[str, str],
) -> Profile:
    """Apply ``changes`` to the profile, creating it from the given defaults if it is absent
    (call under ``lock_account``)."""
    values = {"id": profile_id, "email": email, "display_name": display_name, **changes}
    statement = (
        insert(Profile)
        .values(**values)
        .on_conflict_do_update(
            index_elements=[Profile.id], set_={**changes, "updated_at": func.now()}
        )
        .returning(Profile)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).one()


async def page(
    connection: AsyncConnection, *, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> Sequence[Row[Any]]:
    """Up to ``limit`` profiles in (created_at, id) order, strictly after ``after``."""
    query = select(_PROFILES).order_by(_PROFILES.c.created_at, _PROFILES.c.id).limit(limit)
    if after is not None:
        query = query.where(tuple_(_PROFILES.c.created_at, _PROFILES.c.id) > tuple_(*after))
    return (await connection.execute(query)).all()


class Erasure(NamedTuple):
    erased_before: bool
    profile_deleted: bool


async def erase(session: AsyncSession, user_id: uuid.UUID) -> Erasure:
    """Record the account as erased and delete its profile (call under ``lock_account``)."""
    newly_erased = await session.scalar(
        insert(ErasedAccount)
        .values(user_id=user_id)
        .on_conflict_do_nothing(index_elements=[ErasedAccount.user_id])
        .returning(ErasedAccount.user_id)
    )
    deleted = await session.scalar(
        delete(Profile).where(Profile.id == user_id).returning(Profile.id)
    )
    return Erasure(erased_before=newly_erased is None, profile_deleted=deleted is not None)
