"""The users app as a whole: how it is wired."""

from __future__ import annotations

from gatehouse_testing.dependencies import sync_dependencies
from gatehouse_users.main import create_app
from services.users.tests.support import settings_for


def test_every_endpoint_and_dependency_is_async() -> None:
    settings = settings_for("postgresql+asyncpg://u:p@127.0.0.1:1/db", "redis://127.0.0.1:1")

    assert sync_dependencies(create_app(settings)) == []
