from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gatehouse_common.text import DisplayName, EmailAddress

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128

Password = Annotated[
    str,
    StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH),
]


class RegistrationRequest(BaseModel):
    # strict: a JSON object or number is refused, never coerced into a string.
    model_config = ConfigDict(strict=True)

    email: EmailAddress
    password: Password = Field(examples=["correct horse battery"])
    display_name: DisplayName | None = None


class RegisteredIdentity(BaseModel):
    id: str = Field(description="UUID; the `sub` of this user's access tokens.")
    email: str
    created_at: datetime
