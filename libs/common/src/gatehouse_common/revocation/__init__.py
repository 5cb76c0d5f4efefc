"""Refusing access tokens of revoked logins and users, fed by events.

Wiring: create a ``RevocationSet`` and a ``RevocationFeed`` in the lifespan, run the feed with
``run_in_background`` and await ``wait_caught_up`` before serving; after a token verified,
call ``is_revoked(sub, sid, iat)`` and answer 401 ``invalid_token`` when it is true.
"""

from gatehouse_common.revocation.feed import RevocationFeed
from gatehouse_common.revocation.revocation_set import REVOCATION_ENTRIES, RevocationSet
from gatehouse_common.revocation.settings import RevocationSettings

__all__ = ["REVOCATION_ENTRIES", "RevocationFeed", "RevocationSet", "RevocationSettings"]
