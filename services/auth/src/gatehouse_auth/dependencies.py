"""What the endpoints depend on, built once in the lifespan and kept in ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gatehouse_auth.account_email.repository import EmailTokenRepository
from gatehouse_auth.client_address import client_address
from gatehouse_auth.database import AuthDatabase
from gatehouse_auth.identities.repository import IdentityRepository
from gatehouse_auth.passwords import PasswordHasher
from gatehouse_auth.settings import AuthSettings
from gatehouse_auth.signing_keys import AccessTokenSigner
from gatehouse_auth.throttling import LoginThrottle
from gatehouse_auth.tokens.repository import RefreshTokenRepository


@dataclass(frozen=True, slots=True)
class AuthComponents:
    settings: AuthSettings
    database: AuthDatabase
    passwords: PasswordHasher
    throttle: LoginThrottle
    signer: AccessTokenSigner
    # Forgot-password and resend-verification requests, per email and per client address.
    reset_requests: LoginThrottle
    verification_requests: LoginThrottle


def _components(request: Request) -> AuthComponents:
    components: AuthComponents = request.app.state.auth
    return components


Components = Annotated[AuthComponents, Depends(_components)]


async def _identities(components: Components) -> IdentityRepository:
    # Indexes are ensured before the first query, so a service that started while MongoDB
    # was down gets its unique email index as soon as MongoDB is back.
    await components.database.ensure_indexes()
    return IdentityRepository(components.database.identities)


async def _refresh_tokens(components: Components) -> RefreshTokenRepository:
    await components.database.ensure_indexes()
    return RefreshTokenRepository(components.database)


async def _email_tokens(components: Components) -> EmailTokenRepository:
    await components.database.ensure_indexes()
    return EmailTokenRepository(components.database)


def _passwords(components: Components) -> PasswordHasher:
    return components.passwords


def _throttle(components: Components) -> LoginThrottle:
    return components.throttle


def _signer(components: Components) -> AccessTokenSigner:
    return components.signer


def _client_address(request: Request, components: Components) -> str:
    return client_address(request, components.settings.trusted_proxies)


Identities = Annotated[IdentityRepository, Depends(_identities)]
RefreshTokens = Annotated[RefreshTokenRepository, Depends(_refresh_tokens)]
EmailTokens = Annotated[EmailTokenRepository, Depends(_email_tokens)]
Passwords = Annotated[PasswordHasher, Depends(_passwords)]
Throttle = Annotated[LoginThrottle, Depends(_throttle)]
Signer = Annotated[AccessTokenSigner, Depends(_signer)]
ClientAddress = Annotated[str, Depends(_client_address)]
