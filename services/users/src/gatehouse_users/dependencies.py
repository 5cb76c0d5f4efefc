"""What the endpoints depend on: the request's storage, from the lifespan's ``UsersResources``.

One dependency gives an endpoint all of it, read from the request's lifespan state: FastAPI
solves every dependency of a route anew on each request, and with a node each for the session,
the cache, the relay and the resources under them that was a tenth of a cached read's CPU
(docs/performance.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gatehouse_common.events import OutboxRelay
from gatehouse_common.metrics import route_template
from gatehouse_common.resources import resources_of
from gatehouse_users.database import RequestSession, request_session
from gatehouse_users.profiles.cache import ProfileCache
from gatehouse_users.resources import UsersResources


@dataclass(frozen=True, slots=True)
class ProfileStorage:
    """Where a request's profiles are read and written: its database session, the read cache,
    and the outbox relay, woken once an erasure has committed."""

    session: RequestSession
    cache: ProfileCache
    relay: OutboxRelay


async def _storage(request: Request) -> AsyncIterator[ProfileStorage]:
    resources = resources_of(request, UsersResources)
    async with request_session(resources.database, route_template(request.scope)) as session:
        yield ProfileStorage(session, resources.profile_cache, resources.outbox_relay)


# scope="function": the commit and the cache invalidation after it finish before the response
# is sent, so a client that got its answer reads its own write.
Storage = Annotated[ProfileStorage, Depends(_storage, scope="function")]
