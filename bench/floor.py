"""The benchmark's floor: the cheapest FastAPI app, on the same server settings as the services.

One ``async def`` route returning a small dict, at the path the scenarios request. What a
service costs beyond this is what its own code (middleware, auth, data access) costs, and a
ratio to it holds while this machine's speed drifts by 2x for minutes at a time. Started as
the services are (``python -m floor``, ``gatehouse_common.server.serve``), so the server and
its edge are the same.
"""

from __future__ import annotations

from fastapi import FastAPI

from gatehouse_common.server import serve
from gatehouse_common.settings import HttpServerSettings


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/users/{profile_id}")
    async def read_profile(profile_id: str) -> dict[str, str]:
        return {"id": profile_id, "display_name": "floor"}

    return app


if __name__ == "__main__":
    serve("floor:create_app", HttpServerSettings, default_port=8000)
