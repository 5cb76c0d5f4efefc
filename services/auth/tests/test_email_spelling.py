"""One spelling per address everywhere: login, throttling, the admin CLI and stored emails."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from gatehouse_auth.cli.admin import create_admin
from gatehouse_auth.identities.stored_emails import StoredEmailCollision
from gatehouse_auth.main import create_app
from gatehouse_auth.passwords import PasswordHasher
from gatehouse_auth.settings import IdentityStoreSettings
from services.auth.tests.support import (
    PASSWORD,
    AuthApi,
    SettingsFactory,
    full_width,
    running,
    serving,
)

if TYPE_CHECKING:
    from gatehouse_auth.database import AuthDatabase


def _local_part() -> str:
    return f"ada-{uuid.uuid4().hex[:8]}"


async def test_a_punycode_domain_logs_in_as_typed_and_in_unicode(api: AuthApi) -> None:
    local = _local_part()
    user = await api.register(f"{local}@xn--bcher-kva.de")
    assert user["email"] == f"{local}@xn--bcher-kva.de"

    for spelling in (f"{local}@xn--bcher-kva.de", f"{local}@bücher.de", f"{local}@BÜCHER.DE"):
        response = await api.login(spelling)
        assert response.status_code == 200, (spelling, response.text)


async def test_a_unicode_domain_logs_in_as_it_was_registered(api: AuthApi) -> None:
    local = _local_part()
    await api.register(f"{local}@bücher.de")

    assert (await api.login(f"{local}@bücher.de")).status_code == 200
    assert (await api.login(f"{local}@xn--bcher-kva.de")).status_code == 200


async def test_a_full_width_spelling_logs_in_and_shares_the_throttle_counter(
    make_settings: SettingsFactory,
) -> None:
    async with serving(make_settings(login_max_failures_per_email=3)) as api:
        email = f"{_local_part()}@example.com"
        await api.register(email)
        assert (await api.login(full_width(email))).status_code == 200

        # Three spellings, one address: three failures fill its one counter.
        for spelling in (full_width(email), email.upper(), f"  {email}"):
            assert (await api.login(spelling, "wrong password!")).status_code == 400
        throttled = await api.login(email)

    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) >= 1


async def test_the_admin_cli_finds_the_account_by_another_spelling(
    make_settings: SettingsFactory, api: AuthApi
) -> None:
    settings = make_settings()
    store = IdentityStoreSettings(
        mongo_url=settings.mongo_url,
        mongo_database=settings.mongo_database,
        argon2_time_cost=1,
        argon2_memory_cost_kib=8192,
        argon2_parallelism=1,
    )
    user = await api.register(f"{_local_part()}@bücher.de")

    message = await create_admin(store, full_width(user["email"].upper()), io.StringIO(""))

    assert message == f"granted admin to {user['email']} ({user['id']})"
    assert (await api.tokens(user["email"]))["scope"].endswith(" admin")


# Not a hash of anything: pwdlib refuses it, so no password logs in to such an identity.
NO_PASSWORD_HASH = "!"


async def _store_legacy_identity(
    database: AuthDatabase, email: str, password_hash: str = NO_PASSWORD_HASH
) -> str:
    """An identity as auth stored it before the one spelling: stripped and lower-cased."""
    identity_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    await database.identities.insert_one(
        {
            "_id": identity_id,
            "email": email,
            "password_hash": password_hash,
            "display_name": None,
            "roles": [],
            "created_at": now,
            "updated_at": now,
        }
    )
    return identity_id


async def test_start_up_rewrites_a_legacy_stored_email(
    make_settings: SettingsFactory,
    database: AuthDatabase,
) -> None:
    settings = make_settings()
    local = _local_part()
    identity_id = await _store_legacy_identity(
        database, f"{local}@bücher.de", await PasswordHasher(settings).hash(PASSWORD)
    )
    untouched_id = await _store_legacy_identity(database, f"{local}@example.com")

    async with serving(settings) as api:
        login = await api.login(f"{local}@Bücher.de")

    assert login.status_code == 200, login.text
    stored = {document["_id"]: document["email"] async for document in database.identities.find({})}
    assert stored == {
        identity_id: f"{local}@xn--bcher-kva.de",
        untouched_id: f"{local}@example.com",
    }


async def test_start_up_refuses_two_identities_of_one_address(
    make_settings: SettingsFactory, database: AuthDatabase
) -> None:
    email = f"{_local_part()}@example.com"
    plain = await _store_legacy_identity(database, email)
    # Lower-cased full-width: what the old normalisation stored for a full-width spelling.
    look_alike = await _store_legacy_identity(database, full_width(email).lower())

    with pytest.raises(StoredEmailCollision) as refused:
        async with running(create_app(make_settings())):
            pass

    assert refused.value.identity_ids == [sorted([plain, look_alike])]
    # Nothing was rewritten: a person decides which account keeps the address.
    assert await database.identities.count_documents({"email": email}) == 1
    assert await database.identities.count_documents({"_id": look_alike, "email": email}) == 0
