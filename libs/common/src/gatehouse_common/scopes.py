"""The scopes of Gatehouse access tokens: the one list auth issues from and services require."""

from __future__ import annotations

from enum import StrEnum


class AccessScope(StrEnum):
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    ADMIN = "admin"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    AccessScope.USERS_READ: "Read profiles",
    AccessScope.USERS_WRITE: "Change your own profile",
    AccessScope.ADMIN: "Administer every profile",
}

# Every user's token carries these; administrators' also carry ADMIN.
BASE_SCOPES = (AccessScope.USERS_READ, AccessScope.USERS_WRITE)


def scope_descriptions() -> dict[str, str]:
    """Each scope with what it allows, as OpenAPI's OAuth 2.0 flows list them."""
    return {scope.value: scope.description for scope in AccessScope}
