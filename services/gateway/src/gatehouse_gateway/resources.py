"""What the gateway's requests use, built once by the lifespan (see ``main.create_app``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from redis.asyncio import Redis

from gatehouse_common.events import event_channel_check
from gatehouse_common.health import Readiness
from gatehouse_common.resources import resources_dependency
from gatehouse_common.revocation import RevocationSet
from gatehouse_common.tokens import AccessTokenVerifier
from gatehouse_gateway.openapi import ApiDocs
from gatehouse_gateway.proxy import Proxy


@dataclass(frozen=True, slots=True)
class GatewayResources:
    token_verifier: AccessTokenVerifier
    revocations: RevocationSet
    events_redis: Redis
    proxy: Proxy
    docs: ApiDocs


Resources = Annotated[GatewayResources, Depends(resources_dependency(GatewayResources))]


class JWKSNotLoaded(Exception):
    """No key set has been fetched from auth yet."""


async def _jwks_loaded(resources: GatewayResources) -> None:
    jwks = resources.token_verifier.jwks
    if not jwks.loaded:
        await jwks.refresh(force=False)
    if not jwks.loaded:
        raise JWKSNotLoaded


# The event channel is optional: while it is down, /ready shows it degraded and revocations
# made meanwhile do not reach this gateway (docs/gateway.md, "Revocation at the edge").
READINESS = Readiness[GatewayResources](
    {"jwks": _jwks_loaded},
    optional=event_channel_check(lambda resources: resources.events_redis),
)
