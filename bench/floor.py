"""The benchmark's floor: the cheapest FastAPI app, on the same server settings as the services.

One ``async def`` route returning a small dict, at the path the scenarios request. What a
service costs beyond this is what its own code (middleware, auth, data access) costs, and a
ratio to it holds while this machine's speed drifts by 2x for minutes at a time.
"""

from __future__ import annotations

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/users/{profile_id}")
    async def read_profile(profile_id: str) -> dict[str, str]:
        return {"id": profile_id, "display_name": "floor"}

    return app
