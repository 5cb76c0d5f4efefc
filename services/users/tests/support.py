"""What the users tests share besides fixtures: migrations, databases, settings and types."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

import httpx2
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from gatehouse_testing.issuer import verification_settings
from gatehouse_users.settings import UsersSettings

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"

SettingsFactory = Callable[..., UsersSettings]
AppStarter = Callable[[UsersSettings], AbstractAsyncContextManager[httpx2.AsyncClient]]


class Authorizer(Protocol):
    """Headers with a fresh access token (the ``auth`` fixture)."""

    def __call__(
        self,
        subject: uuid.UUID | str | None = None,
        *,
        scopes: str = "users:read users:write",
        email: str | None = None,
    ) -> dict[str, str]: ...


async def alembic(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the real migration command, as the Compose one-shot and the Kubernetes Job do."""
    environment = {**os.environ, "USERS_DATABASE_URL": database_url}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


async def create_database(server_url: str) -> str:
    """A new, empty database on the server of ``server_url``; returns its URL."""
    name = f"users_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def settings_for(database_url: str, redis_url: str, **overrides: Any) -> UsersSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        # The event channel on the cache's Redis: its keys are all under events:.
        "events_redis_url": redis_url,
        **verification_settings(),
        **overrides,
    }
    return UsersSettings(**values)
