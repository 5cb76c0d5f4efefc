"""Tokens are never cached and never sniffed; the public key set keeps its own cache policy."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.auth.tests.support import AuthApi


async def test_a_token_response_is_no_store_and_nosniff(api: AuthApi) -> None:
    user = await api.register()

    response = await api.login(user["email"])

    assert response.status_code == 200
    assert response.headers.get_list("cache-control") == ["no-store"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "server" not in response.headers


async def test_the_jwks_keeps_its_public_cache_policy(api: AuthApi) -> None:
    response = await api.client.get("/auth/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.headers.get_list("cache-control") == ["public, max-age=60"]
    assert response.headers["x-content-type-options"] == "nosniff"
