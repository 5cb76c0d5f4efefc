from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gatehouse_auth.identities.schemas import Password
from gatehouse_common.text import EmailAddress

# Generous above the 43 characters we issue; anything longer cannot be one of ours.
MAX_TOKEN_LENGTH = 256
EmailToken = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOKEN_LENGTH)]


class VerifyEmailRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    token: EmailToken = Field(description="The token from the verification email.")


class ForgotPasswordRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    email: EmailAddress


class ResetPasswordRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    token: EmailToken = Field(description="The token from the password reset email.")
    new_password: Password = Field(examples=["a new correct horse"])


class EmailAccepted(BaseModel):
    """The same answer whether or not an email was sent, so that it reveals no account."""

    detail: str = Field(
        examples=["If the address belongs to an account, an email is on its way."],
    )
