"""The in-memory set of revoked logins and users that every token check consults.

Two dictionaries: revoked logins by ``sid``, and revoked users by ``sub`` with the time at or
before which their tokens were issued. ``is_revoked`` is one or two dictionary lookups and
never prunes, so it stays on the hot path at well under a microsecond.

Bounded: an entry is needed only while a token it refuses can still be valid, i.e. until the
revocation time plus the longest access-token lifetime plus the verifiers' leeway
(``retention_seconds``). Entries are kept in expiry order (insertion order of a dict, which
events mostly arrive in) and pruned from the front on every insert, so pruning costs only the
entries that expire. An expired entry that is not yet pruned refuses nothing valid: every
token it matches has expired too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Gauge

from gatehouse_common.events import AccountErased, Event, LoginsRevoked

REVOCATION_ENTRIES = Gauge(
    "revocation_entries", "Entries in this process's revocation set.", ["kind"]
)


def _prune_front(expiries: dict[str, float], now: float) -> list[str]:
    expired = []
    for key, expires_at in expiries.items():
        if expires_at > now:
            break
        expired.append(key)
    return expired


class RevocationSet:
    def __init__(self, *, retention_seconds: float, clock: Callable[[], float] = time.time) -> None:
        """``retention_seconds``: the longest access-token lifetime plus the leeway with which
        ``exp`` is checked (a token can be accepted that long after its revocation)."""
        self.retention_seconds = retention_seconds
        self._clock = clock
        self._revoked_sessions: dict[str, float] = {}  # sid -> expires_at, in expiry order
        self._subject_cutoffs: dict[str, float] = {}  # sub -> tokens with iat <= this revoked
        self._subject_expiries: dict[str, float] = {}  # sub -> expires_at, in expiry order
        self._login_gauge = REVOCATION_ENTRIES.labels("login")
        self._user_gauge = REVOCATION_ENTRIES.labels("user")

    def is_revoked(self, subject: str, session_id: str | None, issued_at: float) -> bool:
        """Whether a verified token (its ``sub``, ``sid`` and ``iat``) must be refused."""
        if session_id is not None and session_id in self._revoked_sessions:
            return True
        cutoff = self._subject_cutoffs.get(subject)
        return cutoff is not None and issued_at <= cutoff

    def revoke_session(self, session_id: str, *, revoked_at: float) -> None:
        """Refuse every token of this login (no new one is issued for it after ``revoked_at``)."""
        expires_at = revoked_at + self.retention_seconds
        previous = self._revoked_sessions.pop(session_id, -math.inf)
        self._revoked_sessions[session_id] = max(previous, expires_at)  # moved to the end
        self._prune()

    def revoke_subject(
        self, subject: str, *, issued_at_or_before: float, revoked_at: float
    ) -> None:
        """Refuse the user's tokens whose ``iat`` is at or before ``issued_at_or_before``
        (``math.inf``: every token issued until ``revoked_at`` plus the retention)."""
        latest_issue = revoked_at if math.isinf(issued_at_or_before) else issued_at_or_before
        expires_at = max(latest_issue, revoked_at) + self.retention_seconds
        self._subject_cutoffs[subject] = max(
            self._subject_cutoffs.get(subject, -math.inf), issued_at_or_before
        )
        previous = self._subject_expiries.pop(subject, -math.inf)
        self._subject_expiries[subject] = max(previous, expires_at)
        self._prune()

    def apply(self, event: Event[Any]) -> None:
        """Take in a ``logins.revoked`` or ``account.erased`` event; ignore any other."""
        revoked_at = event.occurred_at.timestamp()
        payload = event.payload
        if isinstance(payload, LoginsRevoked):
            for session_id in payload.session_ids:
                self.revoke_session(session_id, revoked_at=revoked_at)
            if payload.issued_at_or_before is not None:
                self.revoke_subject(
                    str(payload.user_id),
                    issued_at_or_before=payload.issued_at_or_before.timestamp(),
                    revoked_at=revoked_at,
                )
        elif isinstance(payload, AccountErased):
            # Every token of an erased user, also one auth issues before it hears of it.
            self.revoke_subject(
                str(payload.user_id), issued_at_or_before=math.inf, revoked_at=revoked_at
            )

    def prune(self) -> None:
        """Drop entries that can no longer match a valid token."""
        self._prune()

    def __len__(self) -> int:
        return len(self._revoked_sessions) + len(self._subject_cutoffs)

    def _prune(self) -> None:
        now = self._clock()
        for session_id in _prune_front(self._revoked_sessions, now):
            del self._revoked_sessions[session_id]
        for subject in _prune_front(self._subject_expiries, now):
            del self._subject_expiries[subject]
            del self._subject_cutoffs[subject]
        self._login_gauge.set(len(self._revoked_sessions))
        self._user_gauge.set(len(self._subject_cutoffs))
