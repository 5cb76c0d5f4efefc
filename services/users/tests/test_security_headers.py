"""Personal data is never cached and never sniffed (the shared middleware's headers)."""

from __future__ import annotations

from typing import Any

import httpx2


async def test_the_profile_is_no_store_and_nosniff(client: httpx2.AsyncClient, auth: Any) -> None:
    response = await client.get("/users/me", headers=auth(email="ann.lee@example.com"))

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "server" not in response.headers
