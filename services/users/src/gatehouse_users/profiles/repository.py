"""SQL for profiles. Every function takes the request's session and leaves committing to it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gatehouse_users.models import Profile


async def get(session: AsyncSession, profile_id: uuid.UUID) -> Profile | None:
    return await session.get(Profile, profile_id)


async def insert_if_absent(
    session: AsyncSession, profile_id: uuid.UUID, *, email: str | None, display_name: str | None
) -> Profile | None:
    """The profile with this id, inserted if there is none; None if it vanished meanwhile.

    ``ON CONFLICT DO NOTHING`` makes concurrent first requests of one user safe: one insert
    wins, the others wait for it on the primary key and then read the committed row (a second
    statement: the first one's snapshot predates that commit).
    """
    inserted: Profile | None = await session.scalar(
        insert(Profile)
        .values(id=profile_id, email=email, display_name=display_name)
        .on_conflict_do_nothing(index_elements=[Profile.id])
        .returning(Profile)
    )
    if inserted is not None:
        return inserted
    return await session.scalar(
        select(Profile).where(Profile.id == profile_id).execution_options(populate_existing=True)
    )


async def upsert(
    session: AsyncSession,
    profile_id: uuid.UUID,
    *,
    email: str | None,
    display_name: str | None,
    changes: dict[str, str],
) -> Profile:
    """Apply ``changes`` to the profile, creating it from the given defaults if it is absent."""
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
    session: AsyncSession, *, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[Profile]:
    """Up to ``limit`` profiles in (created_at, id) order, strictly after ``after``."""
    query = select(Profile).order_by(Profile.created_at, Profile.id).limit(limit)
    if after is not None:
        query = query.where(tuple_(Profile.created_at, Profile.id) > tuple_(*after))
    return list(await session.scalars(query))


async def delete_by_id(session: AsyncSession, profile_id: uuid.UUID) -> bool:
    deleted = await session.scalar(
        delete(Profile).where(Profile.id == profile_id).returning(Profile.id)
    )
    return deleted is not None
