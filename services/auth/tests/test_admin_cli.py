"""``create-admin``: creates an administrator or grants admin to an existing identity."""

from __future__ import annotations

import io
import uuid

import pytest

from gatehouse_auth.cli.admin import AdminCliError, create_admin
from gatehouse_auth.settings import IdentityStoreSettings
from services.auth.tests.support import AuthApi, SettingsFactory


def _store_settings(make_settings: SettingsFactory) -> IdentityStoreSettings:
    settings = make_settings()
    return IdentityStoreSettings(
        mongo_url=settings.mongo_url,
        mongo_database=settings.mongo_database,
        argon2_time_cost=1,
        argon2_memory_cost_kib=8192,
        argon2_parallelism=1,
    )


async def test_create_admin_makes_an_identity_whose_tokens_carry_admin(
    make_settings: SettingsFactory, api: AuthApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTH_ADMIN_PASSWORD", raising=False)
    email = f"Admin-{uuid.uuid4().hex[:6]}@Example.com"

    message = await create_admin(
        _store_settings(make_settings), email, io.StringIO("admin password 1\n")
    )

    assert message.startswith("created administrator")
    tokens = await api.tokens(email.lower(), "admin password 1")
    assert tokens["scope"] == "users:read users:write admin"


async def test_create_admin_reads_the_password_from_the_environment(
    make_settings: SettingsFactory, api: AuthApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_ADMIN_PASSWORD", "from the environment")
    email = f"env-{uuid.uuid4().hex[:6]}@example.com"

    await create_admin(_store_settings(make_settings), email, io.StringIO(""))

    assert (await api.tokens(email, "from the environment"))["scope"].endswith(" admin")


async def test_create_admin_grants_admin_to_an_existing_identity(
    make_settings: SettingsFactory, api: AuthApi
) -> None:
    user = await api.register()
    assert (await api.tokens(user["email"]))["scope"] == "users:read users:write"

    message = await create_admin(
        _store_settings(make_settings), user["email"].upper(), io.StringIO("")
    )

    assert message == f"granted admin to {user['email']} ({user['id']})"
    tokens = await api.tokens(user["email"])
    assert tokens["scope"] == "users:read users:write admin"
    # A refresh re-reads the identity, so the grant also reaches existing logins.
    refreshed = await api.refresh(tokens["refresh_token"])
    assert refreshed.json()["scope"] == "users:read users:write admin"


@pytest.mark.parametrize(
    ("email", "password"), [("not an email", "long enough pw"), ("a@example.com", "short")]
)
async def test_create_admin_refuses_bad_input(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch, email: str, password: str
) -> None:
    monkeypatch.delenv("AUTH_ADMIN_PASSWORD", raising=False)
    settings = _store_settings(make_settings)

    with pytest.raises(AdminCliError):
        await create_admin(settings, email, io.StringIO(password + "\n"))
