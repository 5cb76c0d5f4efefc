from __future__ import annotations

from fastapi import APIRouter, status

from gatehouse_auth.dependencies import (
    ClientAddress,
    Emails,
    Identities,
    Passwords,
    RegistrationLimit,
)
from gatehouse_auth.identities import service
from gatehouse_auth.identities.schemas import RegisteredIdentity, RegistrationRequest
from gatehouse_common.problems import problem_responses

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=RegisteredIdentity,
    summary="Create an account",
    description="Sends a verification email to the address.",
    # 400: a body that is not JSON at all (FastAPI cannot decode it); 422: JSON, but invalid.
    responses=problem_responses(400, 409, 422, 429, 503),
)
async def register(  # noqa: PLR0913 - the body, then one dependency per collaborator
    body: RegistrationRequest,
    *,
    identities: Identities,
    emails: Emails,
    passwords: Passwords,
    registration_limit: RegistrationLimit,
    address: ClientAddress,
) -> RegisteredIdentity:
    await registration_limit.check(address)
    identity = await service.register(
        identities,
        passwords,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
    )
    await emails.send_verification(identity)
    return RegisteredIdentity(id=identity.id, email=identity.email, created_at=identity.created_at)
