"""What the profile endpoints do: plain async functions over the request's session and the cache."""

from __future__ import annotations

import base64
import functools
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import Row

from gatehouse_common.authentication import InvalidAccessToken
from gatehouse_common.events import AccountErased, OutboxRelay
from gatehouse_common.text import DISPLAY_NAME_MAX_LENGTH
from gatehouse_common.tokens import Principal
from gatehouse_users import outbox
from gatehouse_users.database import AfterCommit, RequestSession
from gatehouse_users.models import Profile
from gatehouse_users.profiles import repository
from gatehouse_users.profiles.cache import ProfileCache
from gatehouse_users.profiles.errors import ErasedAccountToken, InvalidCursor, ProfileNotFound
from gatehouse_users.profiles.schemas import ProfileChanges, ProfilePage, ProfileRead, PublicProfile


def owner_id(principal: Principal) -> uuid.UUID:
    """The profile id of the token's user: its ``sub``, which auth issues as a UUID."""
    try:
        return uuid.UUID(principal.subject)
    except ValueError:
        raise InvalidAccessToken("the subject is not a user id") from None


def default_display_name(email: str | None) -> str | None:
    """The local part of the email, so a new profile has a readable name; None without one."""
    if not email:
        return None
    local_part = email.split("@", 1)[0].strip()[:DISPLAY_NAME_MAX_LENGTH]
    return local_part or None


async def own_profile(db: RequestSession, cache: ProfileCache, principal: Principal) -> ProfileRead:
    profile_id = owner_id(principal)
    lookup = await cache.read(profile_id)
    if lookup.profile is not None:
        return lookup.profile
    async with db.outside_transaction() as connection:
        row: Row[Any] | Profile | None = await repository.read(connection, profile_id)
    if row is None:
        row = await _create(db, principal)
    profile = ProfileRead.model_validate(row)
    db.after_commit(functools.partial(cache.fill, lookup, profile))
    return profile


async def _create(db: RequestSession, principal: Principal) -> Profile:
    profile_id = owner_id(principal)
    await repository.lock_account(db.session, profile_id)
    if await repository.is_erased(db.session, profile_id):
        raise ErasedAccountToken
    return await repository.insert_if_absent(
        db.session,
        profile_id,
        email=principal.email,
        display_name=default_display_name(principal.email),
    )


async def update_own_profile(
    db: RequestSession, cache: ProfileCache, principal: Principal, changes: ProfileChanges
) -> ProfileRead:
    profile_id = owner_id(principal)
    # Usually the profile exists: one UPDATE. Else create it, as a first read would.
    row = await repository.update_existing(db.session, profile_id, changes.values())
    if row is None:
        await repository.lock_account(db.session, profile_id)
        if await repository.is_erased(db.session, profile_id):
            raise ErasedAccountToken
        row = await repository.upsert(
            db.session,
            profile_id,
            email=principal.email,
            display_name=default_display_name(principal.email),
            changes=changes.values(),
        )
    db.after_commit(functools.partial(cache.invalidate, profile_id))
    return ProfileRead.model_validate(row)


async def public_profile(
    db: RequestSession, cache: ProfileCache, profile_id: uuid.UUID
) -> PublicProfile:
    lookup = await cache.read(profile_id)
    if lookup.profile is not None:
        return PublicProfile.model_validate(lookup.profile)
    async with db.outside_transaction() as connection:
        row = await repository.read(connection, profile_id)
    if row is None:
        raise ProfileNotFound
    profile = ProfileRead.model_validate(row)
    db.after_commit(functools.partial(cache.fill, lookup, profile))
    return PublicProfile.model_validate(profile)


async def erase_account(
    db: RequestSession,
    cache: ProfileCache,
    relay: OutboxRelay,
    user_id: uuid.UUID,
    *,
    profile_required: bool,
) -> None:
    """Erase the account: delete its profile and record ``account.erased`` in one transaction.

    auth removes the identity and its logins when the event reaches it, and every revocation
    set refuses the user's tokens. ``profile_required``: 404 when there is no profile (the
    administrator's erasure of someone); a user erasing themselves may have none yet.
    Erasing an account that was already erased changes nothing and records nothing.
    """
    await repository.lock_account(db.session, user_id)
    erasure = await repository.erase(db.session, user_id)
    if profile_required and not erasure.profile_deleted:
        raise ProfileNotFound
    if not erasure.erased_before:
        outbox.record(db.session, AccountErased(user_id=user_id))
        db.after_commit(_notify(relay))
    db.after_commit(functools.partial(cache.invalidate, user_id))


def _notify(relay: OutboxRelay) -> AfterCommit:
    async def notify() -> None:
        relay.notify()

    return notify


async def list_profiles(db: RequestSession, *, limit: int, cursor: str | None) -> ProfilePage:
    after = decode_cursor(cursor) if cursor is not None else None
    # One row more than asked tells whether another page exists without a count query.
    async with db.outside_transaction() as connection:
        rows = await repository.page(connection, limit=limit + 1, after=after)
    items = [ProfileRead.model_validate(row) for row in rows[:limit]]
    next_cursor = encode_cursor(items[-1]) if len(rows) > limit else None
    return ProfilePage(items=items, next_cursor=next_cursor)


class _CursorPosition(BaseModel):
    # strict: only what ``encode_cursor`` writes, no timestamps as numbers or ids as integers.
    model_config = ConfigDict(strict=True)

    created_at: AwareDatetime
    id: uuid.UUID


def encode_cursor(last: ProfileRead) -> str:
    """An opaque cursor: the keyset position of the page's last row, base64url without padding."""
    position = _CursorPosition(created_at=last.created_at, id=last.id)
    return base64.urlsafe_b64encode(position.model_dump_json().encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The keyset position in ``cursor``; ``InvalidCursor`` (422) for any other string.

    The position is returned in UTC: a time valid in its own offset can lie outside Python's
    datetime range in UTC (9999-12-31T23:00-14:00), and the driver would convert it there.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # pydantic's own JSON parser: bad UTF-8, bad JSON, any nesting depth and any number
        # are all a ValidationError (a ValueError), as are missing or mistyped fields.
        position = _CursorPosition.model_validate_json(raw)
        created_at = position.created_at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidCursor from None
    return created_at, position.id
