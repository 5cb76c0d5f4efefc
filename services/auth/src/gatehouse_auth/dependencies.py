"""What the endpoints depend on, derived from the lifespan's ``AuthResources``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from gatehouse_auth.account_email.service import AccountEmails
from gatehouse_auth.client_address import client_address
from gatehouse_auth.database import is_outage
from gatehouse_auth.identities.repository import IdentityRepository
from gatehouse_auth.passwords import PasswordHasher
from gatehouse_auth.resources import Resources
from gatehouse_auth.sessions.repository import SessionRepository
from gatehouse_auth.signing_keys import SigningKeySet
from gatehouse_auth.throttling import RegistrationThrottle
from gatehouse_auth.tokens.service import TokenIssuer


async def _mongodb(resources: Resources) -> AsyncIterator[None]:
    """Once per request that uses MongoDB: through the gate, so that while MongoDB is away
    the request gets its 503 at once, and a ``ConnectionFailure`` it meets opens the gate.

    Indexes are ensured before the first query, so a service that started while MongoDB was
    down gets its unique email index as soon as MongoDB is back.
    """
    async with resources.mongo_gate.passage(is_outage):
        await resources.database.ensure_indexes()
        yield


# scope="function": the gate's watch (AvailabilityGate.passage) ends with the endpoint, never
# while the response is being sent.
MongoDB = Annotated[None, Depends(_mongodb, scope="function")]


async def _identities(resources: Resources, _: MongoDB) -> IdentityRepository:
    return resources.identities


async def _token_issuer(resources: Resources, _: MongoDB) -> TokenIssuer:
    return resources.tokens


async def _sessions(resources: Resources, _: MongoDB) -> SessionRepository:
    return resources.tokens.sessions


async def _account_emails(resources: Resources, _: MongoDB) -> AccountEmails:
    return resources.account_emails


async def _passwords(resources: Resources) -> PasswordHasher:
    return resources.passwords


async def _signing_keys(resources: Resources) -> SigningKeySet:
    return resources.tokens.signer.key_set


async def _registration_throttle(resources: Resources) -> RegistrationThrottle:
    return resources.registration_throttle


async def _client_address(request: Request, resources: Resources) -> str:
    return client_address(request, resources.settings.trusted_proxies)


Identities = Annotated[IdentityRepository, Depends(_identities)]
Tokens = Annotated[TokenIssuer, Depends(_token_issuer)]
Sessions = Annotated[SessionRepository, Depends(_sessions)]
Emails = Annotated[AccountEmails, Depends(_account_emails)]
Passwords = Annotated[PasswordHasher, Depends(_passwords)]
SigningKeys = Annotated[SigningKeySet, Depends(_signing_keys)]
RegistrationLimit = Annotated[RegistrationThrottle, Depends(_registration_throttle)]
ClientAddress = Annotated[str, Depends(_client_address)]
