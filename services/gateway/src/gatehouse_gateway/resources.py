"""What the gateway's requests use, built once by the lifespan (see ``main.create_app``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from gatehouse_common.health import Readiness
from gatehouse_common.resources import resources_dependency
from gatehouse_common.tokens import AccessTokenVerifier
from gatehouse_gateway.openapi import ApiDocs
from gatehouse_gateway.proxy import Proxy


@dataclass(frozen=True, slots=True)
class GatewayResources:
    token_verifier: AccessTokenVerifier
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


READINESS = Readiness[GatewayResources]({"jwks": _jwks_loaded})
