"""HTTP routes of profiles, thin: validation, scopes and dependencies; the work is in service."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from gatehouse_common.authentication import require_scope
from gatehouse_common.problems import problem_responses
from gatehouse_common.scopes import AccessScope
from gatehouse_common.tokens import Principal
from gatehouse_users.dependencies import Storage
from gatehouse_users.profiles import service
from gatehouse_users.profiles.schemas import ProfileChanges, ProfilePage, ProfileRead, PublicProfile

Reader = Annotated[Principal, Depends(require_scope(AccessScope.USERS_READ))]
Writer = Annotated[Principal, Depends(require_scope(AccessScope.USERS_WRITE))]
Administrator = Annotated[Principal, Depends(require_scope(AccessScope.ADMIN))]
ProfileId = Annotated[
    uuid.UUID, Path(description="The profile's id, which is its user's token subject.")
]
# The uuid convertor keeps `/users/me` and every other non-id out of these routes: they answer
# 404 rather than 422, and a 405 there lists only the methods `/users/me` really takes.
BY_ID = "/{profile_id:uuid}"

router = APIRouter(prefix="/users", tags=["users"])


@router.get(
    "/me",
    response_model=ProfileRead,
    summary="Your profile, created from your token on first use",
    responses=problem_responses(401, 403, 503),
)
async def read_own_profile(principal: Reader, storage: Storage) -> ProfileRead:
    return await service.own_profile(storage.session, storage.cache, principal)


@router.patch(
    "/me",
    response_model=ProfileRead,
    summary="Change your display name or bio",
    # 400: a body that is not JSON at all (FastAPI cannot decode it); 422: JSON, but invalid.
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def update_own_profile(
    changes: ProfileChanges, principal: Writer, storage: Storage
) -> ProfileRead:
    return await service.update_own_profile(storage.session, storage.cache, principal, changes)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Erase your account: profile, identity and every login",
    responses=problem_responses(401, 403, 503),
)
async def erase_own_account(principal: Writer, storage: Storage) -> None:
    await service.erase_account(
        storage.session,
        storage.cache,
        storage.relay,
        service.owner_id(principal),
        profile_required=False,
    )


@router.get(
    "",
    response_model=ProfilePage,
    summary="Every profile, oldest first (administrators)",
    responses=problem_responses(401, 403, 422, 503),
)
async def list_profiles(
    _: Administrator,
    storage: Storage,
    limit: Annotated[int, Query(ge=1, le=100, description="Profiles per page.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> ProfilePage:
    return await service.list_profiles(storage.session, limit=limit, cursor=cursor)


@router.get(
    BY_ID,
    response_model=PublicProfile,
    summary="Someone's public profile",
    responses=problem_responses(401, 403, 404, 503),
)
async def read_public_profile(profile_id: ProfileId, _: Reader, storage: Storage) -> PublicProfile:
    return await service.public_profile(storage.session, storage.cache, profile_id)


@router.delete(
    BY_ID,
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Erase someone's account (administrators)",
    responses=problem_responses(401, 403, 404, 503),
)
async def erase_account(profile_id: ProfileId, _: Administrator, storage: Storage) -> None:
    await service.erase_account(
        storage.session, storage.cache, storage.relay, profile_id, profile_required=True
    )
