from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status
from fastapi.responses import JSONResponse, Response

from gatehouse_auth.dependencies import ClientAddress, Identities, Sessions, Tokens
from gatehouse_auth.sessions import service
from gatehouse_auth.sessions.schemas import PasswordChange, SessionList, SessionView
from gatehouse_auth.tokens.oauth import NO_STORE
from gatehouse_auth.tokens.schemas import TokenResponse
from gatehouse_common.authentication import require_scope
from gatehouse_common.problems import problem_responses
from gatehouse_common.scopes import AccessScope
from gatehouse_common.tokens import Principal

router = APIRouter(prefix="/auth", tags=["sessions"])

Reader = Annotated[Principal, Depends(require_scope(AccessScope.USERS_READ))]
Writer = Annotated[Principal, Depends(require_scope(AccessScope.USERS_WRITE))]
SessionId = Annotated[str, Path(min_length=1, max_length=64, description="A login's id (`sid`).")]


@router.get(
    "/sessions",
    response_model=SessionList,
    summary="List your active logins",
    responses=problem_responses(401, 403, 503),
)
async def list_sessions(
    principal: Reader, identities: Identities, sessions: Sessions
) -> JSONResponse:
    active = await service.active_sessions(identities, sessions, principal.subject)
    body = SessionList(
        items=[
            SessionView(
                id=session.id,
                created_at=session.created_at,
                last_used_at=session.last_used_at,
                current=session.id == principal.session_id,
            )
            for session in active
        ]
    )
    return JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End one of your logins",
    description="Its refresh tokens stop working at once, its access tokens within seconds.",
    responses=problem_responses(401, 403, 404, 503),
)
async def end_session(principal: Writer, sessions: Sessions, session_id: SessionId) -> Response:
    await service.end_session(sessions, user_id=principal.subject, session_id=session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out everywhere: end every login",
    responses=problem_responses(401, 403, 503),
)
async def end_every_session(
    principal: Writer, identities: Identities, sessions: Sessions
) -> Response:
    await service.end_every_login(
        identities, sessions, user_id=principal.subject, reason="sign_out"
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/password",
    response_model=TokenResponse,
    summary="Change your password",
    description="Answers with the tokens of a new login; every earlier login is revoked. A "
    "wrong current password counts as a failed login for throttling.",
    responses={
        200: {"headers": {"Cache-Control": {"schema": {"type": "string"}}}},
        **problem_responses(400, 401, 403, 422, 429, 503),
    },
)
async def change_password(
    body: PasswordChange, principal: Writer, tokens: Tokens, address: ClientAddress
) -> JSONResponse:
    issued = await service.change_password(
        tokens,
        user_id=principal.subject,
        # The email the password grant counts failures under (the token carries it).
        throttle_key=principal.email or principal.subject,
        current_password=body.current_password,
        new_password=body.new_password,
        address=address,
    )
    return JSONResponse(issued.model_dump(), headers=NO_STORE)
