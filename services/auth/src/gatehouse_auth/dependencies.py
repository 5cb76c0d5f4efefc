"""What the endpoints depend on, derived from the lifespan's ``AuthResources``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gatehouse_auth.client_address import client_address
from gatehouse_auth.identities.repository import IdentityRepository
from gatehouse_auth.passwords import PasswordHasher
from gatehouse_auth.resources import Resources
from gatehouse_auth.signing_keys import AccessTokenSigner
from gatehouse_auth.throttling import LoginThrottle
from gatehouse_auth.tokens.repository import RefreshTokenRepository


async def _identities(components: Resources) -> IdentityRepository:
    # Indexes are ensured before the first query, so a service that started while MongoDB
    # was down gets its unique email index as soon as MongoDB is back.
    await components.database.ensure_indexes()
    return IdentityRepository(components.database.identities)


async def _refresh_tokens(components: Resources) -> RefreshTokenRepository:
    await components.database.ensure_indexes()
    return RefreshTokenRepository(components.database)


def _passwords(components: Resources) -> PasswordHasher:
    return components.passwords


def _throttle(components: Resources) -> LoginThrottle:
    return components.throttle


def _signer(components: Resources) -> AccessTokenSigner:
    return components.signer


def _client_address(request: Request, components: Resources) -> str:
    return client_address(request, components.settings.trusted_proxies)


Identities = Annotated[IdentityRepository, Depends(_identities)]
RefreshTokens = Annotated[RefreshTokenRepository, Depends(_refresh_tokens)]
Passwords = Annotated[PasswordHasher, Depends(_passwords)]
Throttle = Annotated[LoginThrottle, Depends(_throttle)]
Signer = Annotated[AccessTokenSigner, Depends(_signer)]
ClientAddress = Annotated[str, Depends(_client_address)]
