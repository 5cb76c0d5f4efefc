"""What the endpoints depend on, derived from the lifespan's ``UsersResources``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from gatehouse_common.events import OutboxRelay
from gatehouse_common.metrics import route_template
from gatehouse_users.database import RequestSession, request_session
from gatehouse_users.profiles.cache import ProfileCache
from gatehouse_users.resources import Resources


async def _session(request: Request, resources: Resources) -> AsyncIterator[RequestSession]:
    async with request_session(resources.database, route_template(request.scope)) as session:
        yield session


async def _profile_cache(resources: Resources) -> ProfileCache:
    return resources.profile_cache


async def _outbox_relay(resources: Resources) -> OutboxRelay:
    return resources.outbox_relay


# scope="function": the commit and the cache invalidation after it finish before the response
# is sent, so a client that got its answer reads its own write.
Session = Annotated[RequestSession, Depends(_session, scope="function")]
Cache = Annotated[ProfileCache, Depends(_profile_cache)]
Relay = Annotated[OutboxRelay, Depends(_outbox_relay)]
