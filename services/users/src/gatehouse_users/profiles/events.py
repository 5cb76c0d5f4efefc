"""What profiles do when another service's events arrive (users' consumer group on events:auth).

Handlers are idempotent in effect (see docs/events.md, "Guarantees"): the same event handled
twice leaves the same state, whatever the order of other events.
"""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from gatehouse_common.events import AccountRegistered, Event
from gatehouse_common.text import DisplayName
from gatehouse_users.database import Database
from gatehouse_users.profiles import repository
from gatehouse_users.profiles.service import default_display_name

_display_name = TypeAdapter[str](DisplayName)


class InvalidRegisteredDisplayName(ValueError):
    """auth sent a display name users would refuse: the event is retried, then dead-lettered."""


async def create_registered_profile(database: Database, event: Event[AccountRegistered]) -> None:
    """Create the profile of a newly registered account, unless it exists or was erased.

    The profile may exist already (``GET /users/me`` came first: it is kept as it is), and an
    erasure may have overtaken the registration (nothing is created).
    """
    registered = event.payload
    display_name = default_display_name(registered.email)
    if registered.display_name is not None:
        try:
            display_name = _display_name.validate_python(registered.display_name)
        except ValidationError:
            raise InvalidRegisteredDisplayName from None
    async with database.sessions.begin() as session:
        await repository.lock_account(session, registered.user_id)
        if await repository.is_erased(session, registered.user_id):
            return
        await repository.insert_if_absent(
            session, registered.user_id, email=registered.email, display_name=display_name
        )
