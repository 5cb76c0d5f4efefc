"""Hostile input to the users service: tokens of any shape, cursors of any content, text with
control and format characters. Each is a 4xx problem, never a 500, and changes nothing."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gatehouse_testing.hostile_tokens import bearer_header_bytes, hostile_tokens
from gatehouse_testing.issuer import TestIssuer
from gatehouse_testing.problems import assert_problem
from gatehouse_users.profiles.errors import InvalidCursor
from gatehouse_users.profiles.schemas import ProfileRead
from gatehouse_users.profiles.service import decode_cursor, encode_cursor
from services.users.tests.support import alembic, create_database, settings_for

Auth = Any


async def stored_row(engine: AsyncEngine, profile_id: uuid.UUID) -> dict[str, Any] | None:
    async with engine.connect() as connection:
        result = await connection.execute(
            text("select * from profiles where id = :id"), {"id": profile_id}
        )
        row = result.mappings().first()
    return dict(row) if row else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(hostile_tokens(TestIssuer())))
async def test_a_token_of_any_shape_is_401_invalid_token(
    client: httpx2.AsyncClient, issuer: TestIssuer, shape: str
) -> None:
    token = hostile_tokens(issuer)[shape]
    response = await client.get("/users/me", headers=bearer_header_bytes(token))
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


# --- the admin list's cursor -------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=15,
)
# UTC offsets in whole minutes, as ISO 8601 writes them, from -23:59 to +23:59.
offsets = st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))
aware_times = st.datetimes(timezones=offsets).map(lambda moment: moment.isoformat())
positions = st.fixed_dictionaries(
    {},
    optional={
        "created_at": st.one_of(aware_times, json_values, st.datetimes().map(datetime.isoformat)),
        "id": st.one_of(st.uuids().map(str), json_values),
        "extra": json_values,
    },
)
cursors = st.one_of(
    st.text(),
    st.binary().map(_b64),
    positions.map(lambda position: _b64(json.dumps(position).encode())),
    json_values.map(lambda value: _b64(json.dumps(value).encode())),
    st.integers(1, 20_000).map(lambda depth: _b64(b"[" * depth + b"]" * depth)),
    st.integers(300, 10_000).map(lambda digits: _b64(b'{"created_at": ' + b"9" * digits + b"}")),
)


@settings(max_examples=2000, deadline=None)
@given(cursor=cursors)
def test_any_cursor_decodes_to_a_utc_position_or_is_invalid(cursor: str) -> None:
    try:
        created_at, profile_id = decode_cursor(cursor)
    except InvalidCursor:
        return
    assert created_at.utcoffset() == timedelta(0)
    assert isinstance(profile_id, uuid.UUID)


@settings(max_examples=200, deadline=None)
@given(created_at=st.datetimes(timezones=offsets), profile_id=st.uuids())
def test_a_cursor_this_service_issued_decodes_to_its_position(
    created_at: datetime, profile_id: uuid.UUID
) -> None:
    last = ProfileRead(
        id=profile_id,
        email=None,
        display_name=None,
        bio="",
        created_at=created_at,
        updated_at=created_at,
    )
    try:
        decoded = decode_cursor(encode_cursor(last))
    except InvalidCursor:
        # Only a time that cannot be expressed in UTC at all.
        with pytest.raises(OverflowError):
            created_at.astimezone(UTC)
        return
    assert decoded == (created_at, profile_id)


@pytest.mark.parametrize(
    "created_at",
    ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999-00:01"],
)
async def test_an_out_of_range_cursor_is_422(
    client: httpx2.AsyncClient, auth: Auth, created_at: str
) -> None:
    cursor = _b64(json.dumps({"created_at": created_at, "id": str(uuid.uuid4())}).encode())
    response = await client.get("/users", params={"cursor": cursor}, headers=auth(scopes="admin"))
    assert_problem(response, 422)


# --- text fields -------------------------------------------------------------------------------

HOSTILE_TEXT = {
    "NUL": "a\x00b",
    "escape": "a\x1b[31mb",
    "C1 control": "a\x85b",
    "carriage return": "a\rb",
    "zero-width space": "a\u200bb",
    "right-to-left override": "admin\u202egnp.exe",
    "byte-order mark": "\ufeffa",
    "tag character": "a\U000e0041",
}


@pytest.mark.parametrize("field", ["display_name", "bio"])
@pytest.mark.parametrize("kind", list(HOSTILE_TEXT))
async def test_control_and_format_characters_are_422_and_change_nothing(  # noqa: PLR0917
    client: httpx2.AsyncClient,
    auth: Auth,
    users_engine: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
    field: str,
    kind: str,
) -> None:
    subject = uuid.uuid4()
    headers = auth(subject, email="victim-address@example.com")
    await client.patch(
        "/users/me", json={"display_name": "Before", "bio": "before"}, headers=headers
    )
    before = await stored_row(users_engine, subject)
    capsys.readouterr()

    response = await client.patch("/users/me", json={field: HOSTILE_TEXT[kind]}, headers=headers)

    body = assert_problem(response, 422)
    assert [error["loc"] for error in body["errors"]] == [["body", field]]
    assert await stored_row(users_engine, subject) == before
    logged = capsys.readouterr().out
    assert "victim-address" not in logged
    assert HOSTILE_TEXT[kind] not in logged


@pytest.mark.parametrize(
    "body",
    [
        {"display_name": "\u200b\u200d"},  # invisible only
        {"display_name": "\u3164"},  # a Hangul filler: a letter that shows nothing
        {"display_name": " \u3000 "},  # whitespace only
    ],
)
async def test_invisible_display_names_are_422(
    client: httpx2.AsyncClient, auth: Auth, body: dict[str, str]
) -> None:
    assert_problem(await client.patch("/users/me", json=body, headers=auth()), 422)


async def test_a_bio_keeps_its_lines_and_tabs_and_is_cleared_with_an_empty_string(
    client: httpx2.AsyncClient, auth: Auth
) -> None:
    headers = auth()
    written = await client.patch("/users/me", json={"bio": "one\n\ttwo"}, headers=headers)
    assert written.json()["bio"] == "one\n\ttwo"
    cleared = await client.patch("/users/me", json={"bio": ""}, headers=headers)
    assert cleared.json()["bio"] == ""


async def test_the_published_schema_states_the_text_rules(client: httpx2.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    changes = document["components"]["schemas"]["ProfileChanges"]
    assert changes["minProperties"] == 1
    assert "required" not in changes
    display_name = changes["properties"]["display_name"]
    bio = changes["properties"]["bio"]
    assert (display_name["type"], display_name["minLength"], display_name["maxLength"]) == (
        "string",
        1,
        100,
    )
    assert (bio["type"], bio["maxLength"]) == ("string", 1000)
    # The published patterns refuse what the API refuses (null is not allowed either).
    assert re.search(display_name["pattern"], "a\x00b") is None
    assert re.search(bio["pattern"], "a\u202eb") is None
    assert re.search(bio["pattern"], "a\nb") is not None


# --- a failing statement is logged without values ----------------------------------------------


async def test_a_failing_statement_is_logged_without_its_values(
    postgres_url: str,
    redis_url: str,
    start_app: Any,
    auth: Auth,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A statement the service does not expect to fail: a database with one more constraint.
    database_url = await create_database(postgres_url)
    await alembic(database_url, "upgrade", "head")
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(
            text("alter table profiles add constraint no_secrets check (bio not like '%Secret%')")
        )
    await engine.dispose()

    async with start_app(settings_for(database_url, redis_url)) as client:
        capsys.readouterr()
        response = await client.patch(
            "/users/me",
            json={"bio": "Secret-Bio-Value"},
            headers=auth(email="secret-owner@example.com"),
        )
        logged = capsys.readouterr().out

    assert_problem(response, 500)
    assert "StatementFailed" in logged
    assert "23514" in logged  # the SQLSTATE of a check violation names what happened
    assert "Secret-Bio-Value" not in logged
    assert "secret-owner" not in logged
