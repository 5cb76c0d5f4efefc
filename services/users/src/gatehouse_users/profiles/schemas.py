"""Request and response bodies of the profile endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import MISSING, BaseModel, ConfigDict, Field, model_validator

from gatehouse_common.text import Bio, DisplayName


class ProfileRead(BaseModel):
    """A whole profile, as its owner and administrators see it."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: uuid.UUID
    email: str | None = Field(description="The email of the token that created the profile.")
    display_name: str | None
    bio: str
    created_at: datetime
    updated_at: datetime


class PublicProfile(BaseModel):
    """What anyone with ``users:read`` may see of someone else's profile."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: uuid.UUID
    display_name: str | None
    bio: str
    created_at: datetime


class ProfileChanges(BaseModel):
    """A partial update: the fields given are set, the others kept. A field may be left out
    but not be null: a display name cannot be removed, and `""` clears the bio."""

    # minProperties: the published schema says what the validator below enforces.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    # MISSING, not None: optional without being nullable, in validation and schema alike.
    display_name: DisplayName | MISSING = MISSING
    bio: Bio | MISSING = MISSING

    @model_validator(mode="after")
    def _something_to_change(self) -> ProfileChanges:
        if not self.model_fields_set:
            raise ValueError("give at least one of display_name, bio")
        return self

    def values(self) -> dict[str, str]:
        """The fields the client sent, by column name."""
        sent: dict[str, str] = self.model_dump(exclude_unset=True)
        return sent


class ProfilePage(BaseModel):
    items: list[ProfileRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )
