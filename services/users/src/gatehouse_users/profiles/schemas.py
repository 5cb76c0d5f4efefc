"""Request and response bodies of the profile endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from gatehouse_users.models import BIO_MAX_LENGTH, DISPLAY_NAME_MAX_LENGTH

DisplayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=DISPLAY_NAME_MAX_LENGTH),
]
Bio = Annotated[str, StringConstraints(max_length=BIO_MAX_LENGTH)]


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
    """A partial update: the fields present are set, the others kept."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = Field(
        default=None, description="1 to 100 characters after trimming; null is not allowed."
    )
    bio: Bio | None = Field(default=None, description="Up to 1000 characters; may be empty.")

    @model_validator(mode="after")
    def _something_to_change(self) -> ProfileChanges:
        present = self.model_fields_set
        if not present:
            raise ValueError("give at least one of display_name, bio")
        for name in present:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
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
