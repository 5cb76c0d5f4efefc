"""POST /auth/token and /auth/revoke: the contract's rows, success and failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from joserfc import jws

from gatehouse_auth.opaque_tokens import hash_opaque_token
from gatehouse_common.authentication import token_verifier
from gatehouse_common.settings import TokenVerificationSettings
from gatehouse_common.tokens import InvalidTokenError
from services.auth.tests.support import AuthApi

if TYPE_CHECKING:
    from collections.abc import Callable

    from gatehouse_auth.database import AuthDatabase
    from gatehouse_testing.app import StartedApp

ISSUER = "https://auth.gatehouse.test"
AUDIENCE = "gatehouse"


def _assert_oauth_error(response: httpx2.Response, error: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)


def _verification_settings() -> TokenVerificationSettings:
    return TokenVerificationSettings(
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwks_url="http://auth.test/auth/.well-known/jwks.json",
    )


async def test_password_grant_issues_tokens_the_common_verifier_accepts(
    api: AuthApi, started_app: StartedApp
) -> None:
    user = await api.register()

    response = await api.login(user["email"])

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "users:read users:write"
    assert len(body["refresh_token"]) >= 43  # 256 bits, base64url

    async with token_verifier(
        _verification_settings(), transport=httpx2.ASGITransport(app=started_app)
    ) as verifier:
        principal = await verifier.verify(body["access_token"])
    assert principal.subject == user["id"]
    assert principal.email == user["email"]
    assert principal.scopes == {"users:read", "users:write"}


async def test_access_token_header_and_claims_follow_rfc_9068(api: AuthApi) -> None:
    user = await api.register()
    tokens = await api.tokens(user["email"])

    header = jws.extract_compact(tokens["access_token"].encode()).protected
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    assert isinstance(header["kid"], str)
    claims = json.loads(jws.extract_compact(tokens["access_token"].encode()).payload)
    assert set(claims) == {
        "iss",
        "aud",
        "sub",
        "email",
        "email_verified",
        "sid",
        "exp",
        "iat",
        "jti",
        "scope",
    }
    assert claims["email_verified"] is False
    assert claims["sid"]  # the login: the same across refreshes, see test_sessions.py
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["exp"] - claims["iat"] == 900


async def test_login_email_is_case_insensitive(api: AuthApi) -> None:
    user = await api.register()

    response = await api.login(user["email"].upper())

    assert response.status_code == 200


@pytest.mark.parametrize("which", ["wrong-password", "unknown-email", "not-an-email"])
async def test_bad_credentials_are_invalid_grant(api: AuthApi, which: str) -> None:
    user = await api.register()
    email, password = {
        "wrong-password": (user["email"], "wrong password!"),
        "unknown-email": ("nobody-here@example.com", "correct horse battery"),
        "not-an-email": ("nobody", "correct horse battery"),
    }[which]

    _assert_oauth_error(await api.login(email, password), "invalid_grant")


@pytest.mark.parametrize(
    ("form", "error"),
    [
        pytest.param({}, "invalid_request", id="no-grant-type"),
        pytest.param({"grant_type": "client_credentials"}, "unsupported_grant_type", id="grant"),
        pytest.param({"grant_type": "password", "username": "a@b.co"}, "invalid_request", id="pw"),
        pytest.param({"grant_type": "password", "password": "x" * 12}, "invalid_request", id="u"),
        pytest.param({"grant_type": "refresh_token"}, "invalid_request", id="no-refresh-token"),
        pytest.param({"grant_type": ""}, "invalid_request", id="empty-grant-type"),
        pytest.param(
            {"grant_type": "refresh_token", "refresh_token": ""}, "invalid_request", id="empty"
        ),
    ],
)
async def test_malformed_token_requests_are_400(
    client: httpx2.AsyncClient, form: dict[str, str], error: str
) -> None:
    _assert_oauth_error(await client.post("/auth/token", data=form), error)


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param('{"$gt": ""}', "anything at all", id="operator-username"),
        pytest.param(None, '{"$gt": ""}', id="operator-password"),
        pytest.param('{"$ne": null}', '{"$ne": null}', id="ne-both"),
        pytest.param("[$gt]=", "[$ne]=1", id="bracket-syntax"),
    ],
)
async def test_nosql_operators_in_form_log_nobody_in(
    client: httpx2.AsyncClient, api: AuthApi, username: str | None, password: str
) -> None:
    user = await api.register()

    response = await client.post(
        "/auth/token",
        data={
            "grant_type": "password",
            "username": username or user["email"],
            "password": password,
        },
    )

    _assert_oauth_error(response, "invalid_grant")


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param(FORM, b"grant_type=password&username=a%40b.co&username=c%40d.co", id="user2"),
        pytest.param(FORM, b"grant_type=password&grant_type=refresh_token", id="grant-twice"),
        pytest.param(FORM, b"grant_type=password&x=1&x=2", id="unknown-twice"),
        pytest.param(FORM, b"grant_type=password&username", id="no-equals"),
        pytest.param(FORM, b"grant_type=password&username=%FF", id="not-utf8"),
        pytest.param("text/plain", b"grant_type=password", id="text"),
        pytest.param(None, b"grant_type=password", id="no-content-type"),
    ],
)
async def test_repeated_parameters_and_other_encodings_are_invalid_request(
    client: httpx2.AsyncClient, api: AuthApi, content_type: str | None, body: bytes
) -> None:
    user = await api.register()
    headers = {"content-type": content_type} if content_type else {}

    response = await client.post(
        "/auth/token",
        content=body.replace(b"a%40b.co", user["email"].replace("@", "%40").encode()),
        headers=headers,
    )

    _assert_oauth_error(response, "invalid_request")


async def test_a_multipart_token_request_is_invalid_request_and_logs_nobody_in(
    client: httpx2.AsyncClient, api: AuthApi
) -> None:
    password = "multipart horse battery"
    user = await api.register(password=password)

    response = await client.post(
        "/auth/token",
        files={
            "grant_type": (None, "password"),
            "username": (None, user["email"]),
            "password": (None, password),
        },
    )

    _assert_oauth_error(response, "invalid_request")
    assert (await api.login(user["email"], password)).status_code == 200  # the same, urlencoded


async def test_a_repeated_token_on_revoke_is_invalid_request(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.post(
        "/auth/revoke", content=b"token=a&token=b", headers={"content-type": FORM}
    )

    _assert_oauth_error(response, "invalid_request")


@pytest.mark.parametrize(
    "request_with_operator",
    [
        # A JSON body (the endpoint reads a form) whose password is a MongoDB operator.
        pytest.param(
            lambda email: {
                "json": {"grant_type": "password", "username": email, "password": {"$gt": ""}}
            },
            id="json-body",
        ),
        # A form field named with an operator (``password[$gt]``) is ignored: no password.
        pytest.param(
            lambda email: {
                "content": f"grant_type=password&username={email}&password[$gt]=".encode(),
                "headers": {"content-type": FORM},
            },
            id="operator-in-a-field-name",
        ),
    ],
)
async def test_a_password_sent_as_an_operator_is_400_and_logs_nobody_in(
    client: httpx2.AsyncClient,
    api: AuthApi,
    request_with_operator: Callable[[str], dict[str, Any]],
) -> None:
    user = await api.register()

    response = await client.post("/auth/token", **request_with_operator(user["email"]))

    _assert_oauth_error(response, "invalid_request")


async def test_refresh_grant_rotates_the_refresh_token(api: AuthApi) -> None:
    user = await api.register()
    first = await api.tokens(user["email"])

    response = await api.refresh(first["refresh_token"])

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == "users:read users:write"
    third = await api.refresh(second["refresh_token"])
    assert third.status_code == 200


async def test_spent_refresh_token_is_rejected_and_revokes_the_login(api: AuthApi) -> None:
    user = await api.register()
    first = await api.tokens(user["email"])
    other_login = await api.tokens(user["email"])
    second = (await api.refresh(first["refresh_token"])).json()

    _assert_oauth_error(await api.refresh(first["refresh_token"]), "invalid_grant")

    # The legitimate descendant is revoked too: the whole login family is gone ...
    _assert_oauth_error(await api.refresh(second["refresh_token"]), "invalid_grant")
    # ... but another login of the same user is untouched.
    assert (await api.refresh(other_login["refresh_token"])).status_code == 200


async def test_unknown_refresh_token_is_invalid_grant(api: AuthApi) -> None:
    _assert_oauth_error(await api.refresh("not-a-token-we-issued"), "invalid_grant")
    _assert_oauth_error(await api.refresh("x" * 5000), "invalid_grant")


async def test_expired_refresh_token_is_invalid_grant(api: AuthApi, database: AuthDatabase) -> None:
    user = await api.register()
    tokens = await api.tokens(user["email"])
    # Expired a moment ago, but not yet removed by any TTL clean-up.
    await database.refresh_tokens.update_one(
        {"token_hash": hash_opaque_token(tokens["refresh_token"])},
        {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}},
    )

    _assert_oauth_error(await api.refresh(tokens["refresh_token"]), "invalid_grant")


async def test_revoke_is_200_and_revokes_the_whole_login(api: AuthApi) -> None:
    user = await api.register()
    first = await api.tokens(user["email"])
    second = (await api.refresh(first["refresh_token"])).json()

    response = await api.revoke(first["refresh_token"])  # an already-spent ancestor

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    _assert_oauth_error(await api.refresh(second["refresh_token"]), "invalid_grant")


@pytest.mark.parametrize("token", ["unknown-token", "x" * 1000, '{"$gt": ""}'])
async def test_revoke_unknown_token_is_200(api: AuthApi, token: str) -> None:
    assert (await api.revoke(token)).status_code == 200


async def test_revoke_without_token_is_invalid_request(client: httpx2.AsyncClient) -> None:
    _assert_oauth_error(await client.post("/auth/revoke", data={}), "invalid_request")


async def test_refresh_after_revoke_is_invalid_grant(api: AuthApi) -> None:
    user = await api.register()
    tokens = await api.tokens(user["email"])
    await api.revoke(tokens["refresh_token"])

    _assert_oauth_error(await api.refresh(tokens["refresh_token"]), "invalid_grant")


async def test_refresh_tokens_are_stored_only_as_hashes(
    api: AuthApi, database: AuthDatabase
) -> None:
    user = await api.register()
    tokens = await api.tokens(user["email"])

    stored: list[dict[str, Any]] = await database.refresh_tokens.find({}).to_list()

    assert [doc["token_hash"] for doc in stored] == [hash_opaque_token(tokens["refresh_token"])]
    assert tokens["refresh_token"] not in str(stored)


async def test_access_token_from_other_issuer_is_rejected_by_verifier(
    api: AuthApi, started_app: StartedApp
) -> None:
    user = await api.register()
    tokens = await api.tokens(user["email"])
    settings = TokenVerificationSettings(
        jwt_issuer="https://someone-else.test",
        jwt_audience=AUDIENCE,
        jwks_url="http://auth.test/auth/.well-known/jwks.json",
    )

    async with token_verifier(
        settings, transport=httpx2.ASGITransport(app=started_app)
    ) as verifier:
        with pytest.raises(InvalidTokenError):
            await verifier.verify(tokens["access_token"])


async def test_revoke_with_an_empty_token_is_invalid_request(client: httpx2.AsyncClient) -> None:
    _assert_oauth_error(await client.post("/auth/revoke", data={"token": ""}), "invalid_request")


def _form_schema(document: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The form body's schema, inline or referenced."""
    schema: dict[str, Any] = body["content"]["application/x-www-form-urlencoded"]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


async def test_openapi_says_what_each_grant_needs(client: httpx2.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    body = document["paths"]["/auth/token"]["post"]["requestBody"]
    schema = _form_schema(document, body)

    assert schema["required"] == ["grant_type"]
    needs = {
        branch["properties"]["grant_type"]["const"]: set(branch["required"])
        for branch in schema["oneOf"]
    }
    assert needs == {"password": {"username", "password"}, "refresh_token": {"refresh_token"}}
    for member in schema["properties"].values():
        assert member["type"] == "string"  # not nullable: a form has no null
        assert member["minLength"] == 1


async def test_openapi_says_revoke_needs_a_token(client: httpx2.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    body = document["paths"]["/auth/revoke"]["post"]["requestBody"]
    schema = _form_schema(document, body)

    assert body["required"] is True
    assert schema["required"] == ["token"]
    assert schema["properties"]["token"]["minLength"] == 1
