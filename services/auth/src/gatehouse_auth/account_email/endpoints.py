from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from fastapi.responses import JSONResponse

from gatehouse_auth.account_email.schemas import (
    EmailAccepted,
    ForgotPasswordRequest,
    ResetPasswordRequest,
    VerifyEmailRequest,
)
from gatehouse_auth.dependencies import ClientAddress, Emails
from gatehouse_common.authentication import require_scope
from gatehouse_common.problems import problem_responses
from gatehouse_common.scopes import AccessScope
from gatehouse_common.tokens import Principal

router = APIRouter(prefix="/auth", tags=["auth"])

Reader = Annotated[Principal, Depends(require_scope(AccessScope.USERS_READ))]

NO_STORE = {"Cache-Control": "no-store"}
# One answer for registered and unknown addresses alike.
RESET_ACCEPTED = EmailAccepted(
    detail="If the address belongs to an account, a password reset email is on its way."
)
VERIFICATION_ACCEPTED = EmailAccepted(detail="A verification email is on its way.")


def _accepted(answer: EmailAccepted) -> JSONResponse:
    return JSONResponse(answer.model_dump(), status_code=status.HTTP_202_ACCEPTED, headers=NO_STORE)


@router.post(
    "/verify",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Verify an email address with the token from the verification email",
    responses=problem_responses(400, 422, 503),
)
async def verify(body: VerifyEmailRequest, emails: Emails) -> Response:
    await emails.verify_email(body.token)
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers=NO_STORE)


@router.post(
    "/verify/resend",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EmailAccepted,
    summary="Send a new verification email to the caller's address",
    description="Nothing is sent when the address is verified already.",
    responses=problem_responses(401, 403, 429, 503),
)
async def resend_verification(
    principal: Reader, emails: Emails, address: ClientAddress
) -> JSONResponse:
    await emails.resend_verification(user_id=principal.subject, address=address)
    return _accepted(VERIFICATION_ACCEPTED)


@router.post(
    "/password/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EmailAccepted,
    summary="Ask for a password reset email",
    description="Always 202 with the same body, whether or not the address has an account.",
    # 400: a body that is not JSON at all (FastAPI cannot decode it); 422: JSON, but invalid.
    responses=problem_responses(400, 422, 429, 503),
)
async def forgot_password(
    body: ForgotPasswordRequest, emails: Emails, address: ClientAddress
) -> JSONResponse:
    await emails.request_password_reset(email=body.email, address=address)
    return _accepted(RESET_ACCEPTED)


@router.post(
    "/password/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with the token from the reset email",
    description="Every login of the user is revoked: all refresh tokens stop working.",
    responses=problem_responses(400, 422, 503),
)
async def reset_password(body: ResetPasswordRequest, emails: Emails) -> Response:
    await emails.reset_password(token=body.token, new_password=body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers=NO_STORE)
