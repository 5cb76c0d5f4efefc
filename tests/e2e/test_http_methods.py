"""HEAD wherever GET is and a true ``Allow`` on 405, through the gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gatehouse_testing.problems import problem_mismatches

if TYPE_CHECKING:
    from tests.e2e.public_api import Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def documented_methods(gateway: Gateway, path: str) -> set[str]:
    item = gateway.client.get("/openapi.json").json()["paths"][path]
    return {method.upper() for method in item if method != "parameters"}


def test_head_has_the_get_headers_and_no_body(gateway: Gateway) -> None:
    tokens = gateway.login(gateway.register())
    for path, headers in (
        ("/auth/.well-known/jwks.json", {}),  # public
        ("/users/me", tokens.bearer),  # proxied, with a token
        ("/docs", {}),  # the gateway's own
    ):
        get = gateway.client.get(path, headers=headers)
        head = gateway.client.head(path, headers=headers)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"], path
        assert head.headers["content-type"] == get.headers["content-type"], path


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "PUT"])
def test_405_allows_exactly_the_documented_methods_and_head(gateway: Gateway, method: str) -> None:
    account = gateway.register()
    tokens = gateway.login(account)
    for path, documented in (
        ("/users/me", "/users/me"),
        (f"/users/{account.id}", "/users/{profile_id}"),
        ("/auth/register", "/auth/register"),
    ):
        response = gateway.client.request(method, path, headers=tokens.bearer)
        assert not problem_mismatches(response, 405), (path, response.text)
        allowed = {name.strip() for name in response.headers["allow"].split(",")}
        expected = documented_methods(gateway, documented)
        assert allowed == expected | ({"HEAD"} if "GET" in expected else set()), path
