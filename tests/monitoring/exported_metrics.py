"""Write the metric names one service exports to a file as a JSON list:
`python exported_metrics.py SERVICE OUTPUT` (stdout is the service's log).

Run in a process of its own per service (the Prometheus registry is global to a process, so
one process importing every service would see every service's metrics). The app is created
by its real factory, configured from the environment as in production, and serves its
lifespan, /ready (so readiness gauges exist) and /metrics (the gateway's on its own port).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx2
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

# Sample names of a family, by type (a counter `x` is sampled as `x_total`).
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
}


def sample_names(exposition: str) -> set[str]:
    return {
        family.name + suffix
        for family in text_string_to_metric_families(exposition)
        for suffix in _SUFFIXES.get(family.type, ("",))
    }


def create_app(service: str) -> FastAPI:
    if service == "auth":
        from gatehouse_auth.main import create_app as create_auth  # noqa: PLC0415

        return create_auth()
    if service == "users":
        from gatehouse_users.main import create_app as create_users  # noqa: PLC0415

        return create_users()
    from gatehouse_gateway.main import create_app as create_gateway  # noqa: PLC0415

    return create_gateway()


async def exported(service: str) -> set[str]:
    app = create_app(service)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app), base_url="http://service.test", timeout=30
        ) as client,
    ):
        await client.get("/ready")
        if service == "gateway":
            port = os.environ["GATEWAY_METRICS_PORT"]
            async with httpx2.AsyncClient(timeout=30) as metrics_client:
                response = await metrics_client.get(f"http://127.0.0.1:{port}/metrics")
        else:
            response = await client.get("/metrics")
        response.raise_for_status()
        return sample_names(response.text)


if __name__ == "__main__":
    names = asyncio.run(exported(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(sorted(names)))
