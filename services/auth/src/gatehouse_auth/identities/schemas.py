from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128


def normalise_email(email: str) -> str:
    """One spelling per address: the whole address in lower case, as the contract says."""
    return email.strip().lower()


NormalisedEmail = Annotated[EmailStr, AfterValidator(normalise_email)]
Password = Annotated[
    str,
    StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH),
]


class RegistrationRequest(BaseModel):
    # strict: a JSON object or number is refused, never coerced into a string.
    model_config = ConfigDict(strict=True)

    email: NormalisedEmail = Field(examples=["ada@example.com"])
    password: Password = Field(examples=["correct horse battery"])
    display_name: Annotated[
        str | None, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
    ] = Field(default=None, examples=["Ada Lovelace"])


class RegisteredIdentity(BaseModel):
    id: str = Field(description="UUID; the `sub` of this user's access tokens.")
    email: str
    created_at: datetime
