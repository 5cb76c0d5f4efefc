from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from gatehouse_auth.identities.schemas import MAX_PASSWORD_LENGTH, Password


class SessionView(BaseModel):
    id: str = Field(description="The login's id: the `sid` of its access tokens.")
    created_at: datetime = Field(description="When the user logged in.")
    last_used_at: datetime = Field(description="When the login last got tokens (a refresh).")
    current: bool = Field(description="Whether the presenting access token is of this login.")


class SessionList(BaseModel):
    items: list[SessionView] = Field(description="Active logins, newest first.")


class PasswordChange(BaseModel):
    model_config = ConfigDict(strict=True)

    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    new_password: Password = Field(examples=["a new correct horse"])
