"""Hostile input to the users service: tokens of any shape, cursors of any content, text with
control and format characters. Each is a 4xx problem, never a 500, and changes nothing."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatehouse_testing.hostile_tokens import bearer_header_bytes, hostile_tokens
from gatehouse_testing.issuer import TestIssuer
from gatehouse_users.profiles.schemas import ProfileRead
from gatehouse_users.profiles.service import InvalidCursor, decode_cursor, encode_cursor

Auth = Any
Problem = Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(hostile_tokens(TestIssuer())))
async def test_a_token_of_any_shape_is_401_invalid_token(
    client: httpx2.AsyncClient, issuer: TestIssuer, problem: Problem, shape: str
) -> None:
    token = hostile_tokens(issuer)[shape]
    response = await client.get("/users/me", headers=bearer_header_bytes(token))
    problem(response, 401)
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
    client: httpx2.AsyncClient, auth: Auth, problem: Problem, created_at: str
) -> None:
    cursor = _b64(json.dumps({"created_at": created_at, "id": str(uuid.uuid4())}).encode())
    response = await client.get("/users", params={"cursor": cursor}, headers=auth(scopes="admin"))
    problem(response, 422)
