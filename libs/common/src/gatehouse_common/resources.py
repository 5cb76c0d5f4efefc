"""Lifespan resources: what a service builds at start-up and its requests read.

Every service wires its resources one way. Its lifespan (``create_app(lifespan=...)``) builds
them and yields them as ONE frozen dataclass; ``create_app`` stores that object under
``RESOURCES_KEY`` in the Starlette lifespan state, which the server copies into every request's
scope. Dependencies read it back, typed, with ``resources_of``. Nothing is kept on
``app.state``, in closures or in attributes set after construction, so an app object holds no
resource and a request sees exactly the resources of the lifespan that serves it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from starlette.requests import HTTPConnection, Request
from starlette.types import Scope

from gatehouse_common.tokens import AccessTokenVerifier

if TYPE_CHECKING:
    # Not at run time: the revocation package imports the events kit, which imports this module.
    from gatehouse_common.revocation import RevocationSet

RESOURCES_KEY = "resources"

R = TypeVar("R")


def lifespan_resources(scope: Scope) -> object:
    """The object the app's lifespan yielded (None for an app without resources)."""
    state = scope.get("state")
    if state is None or RESOURCES_KEY not in state:
        raise RuntimeError(
            "no lifespan state in the request scope: run the app's lifespan (a server does; "
            "tests use gatehouse_testing.app.started)"
        )
    return state[RESOURCES_KEY]


def resources_of(connection: HTTPConnection, kind: type[R]) -> R:
    """The request's lifespan resources, checked to be the service's resources class."""
    resources = lifespan_resources(connection.scope)
    if not isinstance(resources, kind):
        raise TypeError(f"the lifespan yielded {type(resources).__name__}, not {kind.__name__}")
    return resources


def resources_dependency(kind: type[R]) -> Callable[[Request], Awaitable[R]]:
    """The async dependency giving a request its lifespan resources, typed:
    ``Resources = Annotated[UsersResources, Depends(resources_dependency(UsersResources))]``."""

    async def resources(request: Request) -> R:
        return resources_of(request, kind)

    return resources


@runtime_checkable
class VerifiesTokens(Protocol):
    """Resources of a service that verifies access tokens (read by ``authentication``)."""

    @property
    def token_verifier(self) -> AccessTokenVerifier: ...


class RefusesRevokedTokens(Protocol):
    """Resources of a service that also refuses tokens of revoked logins and users: the
    authentication dependency answers 401 ``invalid_token`` for them (see docs/events.md).
    Read by attribute, like ``VerifiesTokens`` (see ``authentication._token_checks``)."""

    @property
    def revocations(self) -> RevocationSet: ...
