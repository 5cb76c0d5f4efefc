"""The ORM model. The schema itself is made by the Alembic migrations, never at run time."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    MetaData,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gatehouse_common.text import BIO_MAX_LENGTH, DISPLAY_NAME_MAX_LENGTH

# Constraint names are deterministic, so migrations can refer to (and drop) them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EMAIL_MAX_LENGTH = 320
EVENT_TYPE_MAX_LENGTH = 100


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Profile(Base):
    """A user's profile; ``id`` is the ``sub`` of the user's access tokens."""

    __tablename__ = "profiles"
    __table_args__ = (
        CheckConstraint("char_length(display_name) >= 1", name="display_name_not_empty"),
        # Keyset pagination of the admin list walks this index.
        Index("ix_profiles_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX_LENGTH))
    display_name: Mapped[str | None] = mapped_column(String(DISPLAY_NAME_MAX_LENGTH))
    bio: Mapped[str] = mapped_column(String(BIO_MAX_LENGTH), server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ErasedAccount(Base):
    """An account that was erased: its id only, so that nothing creates its profile again.

    Neither a late ``account.registered`` event nor a request with a token issued before the
    erasure may bring the profile back; user ids are never reused (registering the same email
    again gives a new id), so the row is never in anyone's way.
    """

    __tablename__ = "erased_accounts"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboxEvent(Base):
    """An event recorded in the transaction of the change it describes, until it is relayed
    to ``events:users`` (then the row is deleted)."""

    __tablename__ = "outbox"

    # Relay order: the order in which the rows were written.
    position: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    event_type: Mapped[str] = mapped_column(String(EVENT_TYPE_MAX_LENGTH))
    version: Mapped[int]
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
