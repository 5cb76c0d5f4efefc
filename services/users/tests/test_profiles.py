"""Every row of the contract's Users table, success and failure, scopes included."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx2
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gatehouse_testing.problems import assert_problem
from gatehouse_users.database import make_engine
from services.users.tests.support import AppStarter, Authorizer, SettingsFactory

PROFILE_FIELDS = {"id", "email", "display_name", "bio", "created_at", "updated_at"}
PUBLIC_FIELDS = {"id", "display_name", "bio", "created_at"}


async def stored_row(engine: AsyncEngine, profile_id: uuid.UUID | str) -> dict[str, Any] | None:
    async with engine.connect() as connection:
        row = (
            (
                await connection.execute(
                    text("select * from profiles where id = :id"), {"id": str(profile_id)}
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- authentication and scopes, for every route ------------------------------------------------

ROUTES = [
    ("GET", "/users/me", "users:read"),
    ("PATCH", "/users/me", "users:write"),
    ("GET", f"/users/{uuid.uuid4()}", "users:read"),
    ("GET", "/users", "admin"),
    ("DELETE", "/users/me", "users:write"),
    ("DELETE", f"/users/{uuid.uuid4()}", "admin"),
]


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
async def test_no_token_is_401_with_a_bearer_challenge(
    client: httpx2.AsyncClient, method: str, path: str, scope: str
) -> None:
    response = await client.request(method, path, json={"bio": "x"})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
async def test_an_invalid_token_is_401_invalid_token(
    client: httpx2.AsyncClient, method: str, path: str, scope: str
) -> None:
    response = await client.request(
        method, path, json={"bio": "x"}, headers={"Authorization": "Bearer not.a.token"}
    )
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize("route", ROUTES)
async def test_a_token_without_the_scope_is_403(
    client: httpx2.AsyncClient, auth: Authorizer, route: tuple[str, str, str]
) -> None:
    method, path, scope = route
    every_other_scope = " ".join(s for s in ("users:read", "users:write", "admin") if s != scope)
    response = await client.request(
        method, path, json={"bio": "x"}, headers=auth(scopes=every_other_scope)
    )
    assert_problem(response, 403)
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert f'scope="{scope}"' in response.headers["www-authenticate"]


async def test_a_subject_that_is_not_a_uuid_is_401(
    client: httpx2.AsyncClient, auth: Authorizer
) -> None:
    response = await client.get("/users/me", headers=auth("service-account-7"))
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


# --- GET /users/me -----------------------------------------------------------------------------


async def test_me_creates_the_profile_from_the_token_on_first_use(
    client: httpx2.AsyncClient, auth: Authorizer, users_engine: AsyncEngine
) -> None:
    subject = uuid.uuid4()
    assert await stored_row(users_engine, subject) is None

    response = await client.get("/users/me", headers=auth(subject, email="ann.lee@example.com"))

    assert response.status_code == 200
    body = response.json()
    assert body.keys() == PROFILE_FIELDS
    assert body["id"] == str(subject)
    assert body["email"] == "ann.lee@example.com"
    assert body["display_name"] == "ann.lee"
    assert body["bio"] == ""
    assert body["created_at"] == body["updated_at"]
    row = await stored_row(users_engine, subject)
    assert row is not None
    assert row["email"] == "ann.lee@example.com"


async def test_me_returns_the_same_profile_afterwards(
    client: httpx2.AsyncClient, auth: Authorizer
) -> None:
    subject = uuid.uuid4()
    first = await client.get("/users/me", headers=auth(subject, email="a@example.com"))
    # A later token with another email does not rewrite the profile made on first use.
    again = await client.get("/users/me", headers=auth(subject, email="b@example.com"))
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()


async def test_concurrent_first_requests_create_one_row(
    client: httpx2.AsyncClient, auth: Authorizer, users_engine: AsyncEngine
) -> None:
    subject = uuid.uuid4()
    responses = await asyncio.gather(
        *(client.get("/users/me", headers=auth(subject)) for _ in range(12))
    )
    assert {response.status_code for response in responses} == {200}
    assert len({response.json()["created_at"] for response in responses}) == 1
    async with users_engine.connect() as connection:
        count = await connection.scalar(
            text("select count(*) from profiles where id = :id"), {"id": str(subject)}
        )
    assert count == 1


async def test_a_second_read_is_served_by_the_cache(
    client: httpx2.AsyncClient, auth: Authorizer
) -> None:
    subject = uuid.uuid4()
    await client.get("/users/me", headers=auth(subject))
    hits = metric("users_cache_hits_total")
    statements = metric("users_db_statements_per_request_sum", route="/users/me")

    response = await client.get("/users/me", headers=auth(subject))

    assert response.status_code == 200
    assert metric("users_cache_hits_total") == hits + 1
    assert metric("users_db_statements_per_request_sum", route="/users/me") == statements


# --- PATCH /users/me ---------------------------------------------------------------------------


async def test_patch_changes_the_given_fields_and_keeps_the_others(
    client: httpx2.AsyncClient, auth: Authorizer, users_engine: AsyncEngine
) -> None:
    subject = uuid.uuid4()
    created = (await client.get("/users/me", headers=auth(subject))).json()

    renamed = await client.patch(
        "/users/me", json={"display_name": "  Ann  "}, headers=auth(subject)
    )
    assert renamed.status_code == 200
    assert renamed.json()["display_name"] == "Ann"  # trimmed
    assert renamed.json()["bio"] == ""
    assert renamed.json()["updated_at"] > created["updated_at"]
    assert renamed.json()["created_at"] == created["created_at"]

    described = await client.patch("/users/me", json={"bio": "b" * 1000}, headers=auth(subject))
    assert described.status_code == 200
    assert described.json()["display_name"] == "Ann"
    assert described.json()["bio"] == "b" * 1000

    cleared = await client.patch("/users/me", json={"bio": ""}, headers=auth(subject))
    assert cleared.json()["bio"] == ""
    read_back = await client.get("/users/me", headers=auth(subject))
    assert read_back.json() == cleared.json()
    row = await stored_row(users_engine, subject)
    assert row is not None
    assert (row["display_name"], row["bio"]) == ("Ann", "")


async def test_patch_before_any_read_creates_the_profile(
    client: httpx2.AsyncClient, auth: Authorizer
) -> None:
    subject = uuid.uuid4()
    response = await client.patch(
        "/users/me", json={"bio": "first"}, headers=auth(subject, email="zed@example.com")
    )
    assert response.status_code == 200
    assert response.json()["bio"] == "first"
    assert response.json()["display_name"] == "zed"
    assert (await client.get("/users/me", headers=auth(subject))).json() == response.json()


@pytest.mark.parametrize(
    "body",
    [
        {"display_name": ""},
        {"display_name": "   "},
        {"display_name": "x" * 101},
        {"display_name": None},
        {"bio": "x" * 1001},
        {"bio": None},
        {"bio": 5},
        {},
        {"email": "mallory@example.com"},
        {"bio": "ok", "id": str(uuid.uuid4())},
    ],
)
async def test_patch_rejects_bad_input_and_changes_nothing(
    client: httpx2.AsyncClient,
    auth: Authorizer,
    users_engine: AsyncEngine,
    body: dict[str, Any],
) -> None:
    subject = uuid.uuid4()
    await client.patch("/users/me", json={"bio": "before"}, headers=auth(subject))
    before = await stored_row(users_engine, subject)

    response = await client.patch("/users/me", json=body, headers=auth(subject))

    assert_problem(response, 422)
    assert await stored_row(users_engine, subject) == before


async def test_patch_rejects_a_body_that_is_not_json(
    client: httpx2.AsyncClient, auth: Authorizer
) -> None:
    response = await client.patch(
        "/users/me",
        content=b"bio=x",
        headers={**auth(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 422)


# --- GET /users/{id} ---------------------------------------------------------------------------


async def test_public_profile_shows_only_public_fields(
    client: httpx2.AsyncClient, auth: Authorizer
) -> None:
    owner = uuid.uuid4()
    await client.patch("/users/me", json={"bio": "hello"}, headers=auth(owner))

    response = await client.get(f"/users/{owner}", headers=auth(scopes="users:read"))

    assert response.status_code == 200
    assert response.json().keys() == PUBLIC_FIELDS
    assert response.json()["bio"] == "hello"


async def test_public_profile_of_nobody_is_404(
    client: httpx2.AsyncClient, auth: Authorizer
) -> None:
    assert_problem(await client.get(f"/users/{uuid.uuid4()}", headers=auth()), 404)


async def test_public_profile_with_a_malformed_id_is_404(
    client: httpx2.AsyncClient, auth: Authorizer
) -> None:
    assert_problem(await client.get("/users/not-a-uuid", headers=auth()), 404)


# --- GET /users (admin) ------------------------------------------------------------------------


async def test_admin_list_walks_every_profile_once_in_order(
    client: httpx2.AsyncClient, auth: Authorizer, users_engine: AsyncEngine
) -> None:
    created = [uuid.uuid4() for _ in range(7)]
    for subject in created:
        await client.get("/users/me", headers=auth(subject))

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/users", params=params, headers=auth(scopes="admin"))
        assert response.status_code == 200
        page = response.json()
        assert len(page["items"]) <= 3
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    async with users_engine.connect() as connection:
        total = await connection.scalar(text("select count(*) from profiles"))
    ids = [item["id"] for item in seen]
    assert len(ids) == len(set(ids)) == total
    assert {str(subject) for subject in created} <= set(ids)
    positions = [(item["created_at"], item["id"]) for item in seen]
    assert positions == sorted(positions)
    assert seen[0].keys() == PROFILE_FIELDS


async def test_admin_list_defaults_to_50(client: httpx2.AsyncClient, auth: Authorizer) -> None:
    for _ in range(3):
        await client.get("/users/me", headers=auth())
    response = await client.get("/users", headers=auth(scopes="admin"))
    assert response.status_code == 200
    page = response.json()
    assert len(page["items"]) <= 50
    assert (page["next_cursor"] is None) == (len(page["items"]) < 50)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"cursor": "!!!"},
        {"cursor": "e30"},  # base64url of "{}"
        {"cursor": "bm90IGpzb24"},  # base64url of "not json"
        {"cursor": "x" * 600},
    ],
)
async def test_admin_list_rejects_bad_parameters(
    client: httpx2.AsyncClient, auth: Authorizer, params: dict[str, Any]
) -> None:
    assert_problem(await client.get("/users", params=params, headers=auth(scopes="admin")), 422)


# --- malformed ids, HEAD and 405 ------------------------------------------------------------


async def test_delete_with_a_malformed_id_is_404(
    client: httpx2.AsyncClient, auth: Authorizer
) -> None:
    assert_problem(await client.delete("/users/not-a-uuid", headers=auth(scopes="admin")), 404)


async def test_405_on_own_profile_lists_exactly_its_methods(
    client: httpx2.AsyncClient, auth: Authorizer
) -> None:
    response = await client.request("TRACE", "/users/me", headers=auth())

    assert_problem(response, 405)
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH"


async def test_head_of_own_profile_has_the_get_headers(
    client: httpx2.AsyncClient, auth: Authorizer
) -> None:
    owner = uuid.uuid4()
    get = await client.get("/users/me", headers=auth(owner))
    head = await client.head("/users/me", headers=auth(owner))

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]


# --- every service -----------------------------------------------------------------------------


async def test_health_ready_and_metrics(client: httpx2.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "events": "ok"}
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    for name in (
        "users_cache_hits_total",
        "users_cache_misses_total",
        "events_channel_up",
        "revocation_entries",
    ):
        assert name in metrics.text


async def test_openapi_documents_the_users_routes(client: httpx2.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/users/me", "/users", "/users/{profile_id}"} <= paths.keys()
    assert "404" in paths["/users/{profile_id}"]["get"]["responses"]
    profile_id = paths["/users/{profile_id}"]["get"]["parameters"][0]
    assert profile_id["name"] == "profile_id"
    assert profile_id["description"]
    assert paths["/users/me"]["get"]["operationId"] == "read_own_profile"


async def test_a_body_that_is_not_json_is_a_documented_400(
    client: httpx2.AsyncClient, auth: Authorizer
) -> None:
    response = await client.patch(
        "/users/me",
        content=b"\xff\xfe{",
        headers={**auth(), "content-type": "application/json"},
    )

    assert_problem(response, 400)
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "400" in paths["/users/me"]["patch"]["responses"]


# --- engine configuration ----------------------------------------------------------------------


async def test_null_pool_serves_requests(
    make_settings: SettingsFactory, start_app: AppStarter, auth: Authorizer
) -> None:
    # The benchmarks compare the pooled engine with a connection per request.
    async with start_app(make_settings(db_pool_class="null")) as client:
        owner = uuid.uuid4()
        patched = await client.patch("/users/me", json={"bio": "no pool"}, headers=auth(owner))
        assert patched.status_code == 200
        assert (await client.get(f"/users/{owner}", headers=auth())).json()["bio"] == "no pool"


@pytest.mark.parametrize("pool_class", ["queue", "null"])
async def test_the_statement_timeout_setting_reaches_the_server(
    make_settings: SettingsFactory, pool_class: str
) -> None:
    engine = make_engine(make_settings(db_statement_timeout_ms=1234, db_pool_class=pool_class))
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("show statement_timeout")) == "1234ms"
    finally:
        await engine.dispose()
