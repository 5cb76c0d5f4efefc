from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from gatehouse_common.text import DisplayName, EmailAddress

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128


# Still used by the password grant and the admin CLI, which move to
# gatehouse_common.text.normalize_email together with the throttling keys (issue 11 item 5).
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

    email: EmailAddress
    password: Password = Field(examples=["correct horse battery"])
    display_name: DisplayName | None = None


class RegisteredIdentity(BaseModel):
    id: str = Field(description="UUID; the `sub` of this user's access tokens.")
    email: str
    created_at: datetime
