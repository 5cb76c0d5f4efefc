"""POST /auth/register: every row of the contract, and input that must never reach MongoDB."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from services.auth.tests.support import AuthApi, full_width

if TYPE_CHECKING:
    import httpx2

    from gatehouse_auth.database import AuthDatabase


def _email() -> str:
    return f"Reg-{uuid.uuid4().hex[:8]}@Example.COM"


async def _stored(database: AuthDatabase, email: str) -> dict[str, Any] | None:
    document: dict[str, Any] | None = await database.identities.find_one({"email": email})
    return document


async def test_register_creates_identity_with_normalised_email(
    client: httpx2.AsyncClient, database: AuthDatabase
) -> None:
    email = _email()
    response = await client.post(
        "/auth/register",
        json={"email": email, "password": "long enough pw", "display_name": "Ada"},
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "created_at"}
    assert body["email"] == email.lower()
    assert str(uuid.UUID(body["id"])) == body["id"]
    stored = await _stored(database, email.lower())
    assert stored is not None
    assert stored["_id"] == body["id"]
    assert stored["password_hash"].startswith("$argon2id$")
    assert "long enough pw" not in str(stored)


async def test_register_taken_email_is_409_whatever_the_case(
    client: httpx2.AsyncClient, api: AuthApi
) -> None:
    email = _email()
    await api.register(email)

    response = await client.post(
        "/auth/register", json={"email": email.upper(), "password": "another password"}
    )

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 409
    assert problem["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"email": "not-an-email", "password": "long enough pw"}, id="bad-email"),
        pytest.param({"email": "a@example.com", "password": "short"}, id="short-password"),
        pytest.param({"email": "a@example.com", "password": "x" * 129}, id="long-password"),
        pytest.param({"password": "long enough pw"}, id="no-email"),
        pytest.param({"email": "a@example.com"}, id="no-password"),
        pytest.param({"email": {"$gt": ""}, "password": "long enough pw"}, id="operator-email"),
        pytest.param({"email": "a@example.com", "password": {"$gt": ""}}, id="operator-password"),
        pytest.param({"email": ["a@example.com"], "password": "long enough pw"}, id="list-email"),
        pytest.param({"email": "a@example.com", "password": 12345678901}, id="number-password"),
        pytest.param(
            {"email": "a@example.com", "password": "long enough pw", "display_name": ""},
            id="empty-display-name",
        ),
        pytest.param({"email": "a\x00@example.com", "password": "long enough pw"}, id="nul-email"),
        pytest.param(
            {"email": "a\u200b@example.com", "password": "long enough pw"}, id="zero-width-email"
        ),
        pytest.param(
            {"email": "a@example.com\r\nBcc: x@example.com", "password": "long enough pw"},
            id="header-injection-email",
        ),
        pytest.param(
            {"email": "a@example.com", "password": "long enough pw", "display_name": "a\x00b"},
            id="nul-display-name",
        ),
        pytest.param(
            {"email": "a@example.com", "password": "long enough pw", "display_name": "\u202e"},
            id="bidi-override-display-name",
        ),
        pytest.param(
            {"email": "a@example.com", "password": "long enough pw", "display_name": "\u3164"},
            id="invisible-display-name",
        ),
    ],
)
async def test_register_invalid_input_is_422_and_stores_nothing(
    client: httpx2.AsyncClient, database: AuthDatabase, body: dict[str, Any]
) -> None:
    response = await client.post("/auth/register", json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert await database.identities.count_documents({}) == 0
    assert "long enough pw" not in response.text


async def test_register_form_body_is_422(client: httpx2.AsyncClient) -> None:
    response = await client.post(
        "/auth/register", data={"email": "a@example.com", "password": "long enough pw"}
    )

    assert response.status_code == 422


@pytest.mark.parametrize(
    ("registered", "variant", "stored"),
    [
        pytest.param(
            "ada@example.com", full_width("ada@example.com"), "ada@example.com", id="full-width"
        ),
        pytest.param(
            "ada@bücher.de", "ADA@XN--BCHER-KVA.DE", "ada@xn--bcher-kva.de", id="punycode-domain"
        ),
        pytest.param(
            "ada@xn--bcher-kva.de", "Ada@Bücher.de", "ada@xn--bcher-kva.de", id="unicode-domain"
        ),
        pytest.param("Straße@example.com", "STRASSE@example.com", "strasse@example.com", id="ß"),
    ],
)
async def test_another_spelling_of_a_registered_email_is_the_same_account(
    client: httpx2.AsyncClient,
    database: AuthDatabase,
    registered: str,
    variant: str,
    stored: str,
) -> None:
    first = await client.post(
        "/auth/register", json={"email": registered, "password": "long enough pw"}
    )
    assert first.status_code == 201, first.text
    assert first.json()["email"] == stored

    again = await client.post(
        "/auth/register", json={"email": variant, "password": "long enough pw"}
    )

    assert again.status_code == 409
    assert await database.identities.count_documents({}) == 1
