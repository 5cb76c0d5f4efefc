"""The events services exchange. ``docs/events.md`` documents each with a JSON example."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

from gatehouse_common.events.envelope import EventPayload, register_payload

RevocationReason = Literal[
    "revoked", "refresh_reuse", "sign_out", "password_change", "password_reset", "erasure"
]


@register_payload
class AccountRegistered(EventPayload):
    """Published by auth when an identity is created; users creates the profile."""

    event_type = "account.registered"

    user_id: uuid.UUID
    email: str
    display_name: str | None = None


@register_payload
class AccountErased(EventPayload):
    """Published by users when an account is erased; auth removes the identity and logins.

    Every access token of the user is refused from then on (see ``RevocationSet``).
    """

    event_type = "account.erased"

    user_id: uuid.UUID


@register_payload
class LoginsRevoked(EventPayload):
    """Published by auth when logins end: access tokens issued for them must be refused.

    ``session_ids`` names the logins (the ``sid`` claim); ``issued_at_or_before`` revokes every
    token of the user whose ``iat`` is at or before that time. ``iat`` has whole seconds, so a
    login made in the same second after such a revocation is refused too: when the user gets
    a new login at once (password change), name the old logins instead.
    """

    event_type = "logins.revoked"

    user_id: uuid.UUID
    session_ids: tuple[str, ...] = Field(default=(), max_length=1000)
    issued_at_or_before: AwareDatetime | None = None
    reason: RevocationReason

    @model_validator(mode="after")
    def _revokes_something(self) -> LoginsRevoked:
        if not self.session_ids and self.issued_at_or_before is None:
            raise ValueError("name session_ids or issued_at_or_before")
        return self
