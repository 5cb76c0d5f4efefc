"""Key sets, the keys CLI, rotation as a client sees it, and the JWKS."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from gatehouse_auth.cli import keys as keys_cli
from gatehouse_auth.main import create_app
from gatehouse_auth.signing_keys import KeySetError, SigningKeySet
from gatehouse_common.authentication import token_verifier
from gatehouse_common.settings import TokenVerificationSettings
from gatehouse_common.tokens import InvalidTokenError
from gatehouse_testing.app import started
from services.auth.tests.support import AuthApi, SettingsFactory, serving

PUBLIC_RSA_MEMBERS = {"kty", "kid", "alg", "use", "n", "e"}


def _verification_settings() -> TokenVerificationSettings:
    return TokenVerificationSettings(
        jwt_issuer="https://auth.gatehouse.test",
        jwt_audience="gatehouse",
        jwks_url="http://auth.test/auth/.well-known/jwks.json",
    )


def test_generate_writes_a_private_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"

    assert keys_cli.main(["generate", "--file", str(path)]) == 0

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key_set = SigningKeySet.load(path)
    assert key_set.active_key.public_key.key_size == 2048
    assert keys_cli.main(["generate", "--file", str(path)]) == 1
    assert SigningKeySet.load(path).active_kid == key_set.active_kid
    assert keys_cli.main(["generate", "--file", str(path), "--force"]) == 0
    assert SigningKeySet.load(path).active_kid != key_set.active_kid


def test_rotate_then_prune(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys_cli.main(["generate", "--file", str(path)])
    first = SigningKeySet.load(path).active_kid

    assert keys_cli.main(["rotate", "--file", str(path), "--retire-after", "0"]) == 0
    rotated = SigningKeySet.load(path)
    assert rotated.active_kid != first
    assert set(rotated.keys) == {first, rotated.active_kid}
    assert rotated.retire_after[first] <= time.time()

    assert keys_cli.main(["prune", "--file", str(path)]) == 0
    pruned = SigningKeySet.load(path)
    assert set(pruned.keys) == {rotated.active_kid}
    assert pruned.retire_after == {}


def test_staged_rotation_publishes_before_it_signs(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys_cli.main(["generate", "--file", str(path)])
    first = SigningKeySet.load(path).active_kid

    assert keys_cli.main(["add", "--file", str(path)]) == 0
    staged = SigningKeySet.load(path)
    (added,) = set(staged.keys) - {first}
    assert staged.active_kid == first
    assert {key["kid"] for key in staged.public_jwks()["keys"]} == {first, added}
    assert "not signing yet" in keys_cli.run(["show", "--file", str(path)])

    assert keys_cli.main(["activate", added, "--file", str(path), "--retire-after", "600"]) == 0
    active = SigningKeySet.load(path)
    assert active.active_kid == added
    assert active.retire_after[first] > time.time()
    assert {key["kid"] for key in active.public_jwks()["keys"]} == {first, added}


def test_activate_refuses_unknown_and_current_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys_cli.main(["generate", "--file", str(path)])
    current = SigningKeySet.load(path).active_kid

    assert keys_cli.main(["activate", "no-such-kid", "--file", str(path)]) == 1
    assert keys_cli.main(["activate", current, "--file", str(path)]) == 1
    assert SigningKeySet.load(path).active_kid == current


def test_rotate_defaults_come_from_auth_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    monkeypatch.setenv("AUTH_SIGNING_KEYS_FILE", str(path))
    monkeypatch.setenv("AUTH_ACCESS_TOKEN_TTL_SECONDS", "600")
    keys_cli.main(["generate"])
    first = SigningKeySet.load(path).active_kid
    before = time.time()

    keys_cli.main(["rotate"])

    retire_at = SigningKeySet.load(path).retire_after[first]
    assert int(before) + 660 <= retire_at <= time.time() + 660


def test_cli_runs_as_a_module(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    environment = {**os.environ, "AUTH_SIGNING_KEYS_FILE": str(path)}

    for command in (["generate"], ["rotate", "--retire-after", "60"], ["show"]):
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [sys.executable, "-m", "gatehouse_auth.cli.keys", *command],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    assert "active" in result.stdout
    assert "published until" in result.stdout


@pytest.mark.parametrize(
    "document",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({"keys": []}, id="no-active-kid"),
        pytest.param({"active_kid": "a", "keys": []}, id="active-kid-missing"),
        pytest.param({"active_kid": "a", "keys": [{"kid": "a", "kty": "oct", "k": "AA"}]}, id="hs"),
    ],
)
def test_broken_key_sets_are_refused(document: object) -> None:
    with pytest.raises(KeySetError):
        SigningKeySet.from_document(document)


def test_public_key_only_set_is_refused() -> None:
    document = SigningKeySet.create().to_document()
    document["keys"] = [
        {name: value for name, value in key.items() if name in PUBLIC_RSA_MEMBERS}
        for key in document["keys"]
    ]

    with pytest.raises(KeySetError, match="no private part"):
        SigningKeySet.from_document(document)


def test_service_does_not_start_without_a_key_set(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    with pytest.raises(KeySetError):
        create_app(make_settings(signing_keys_file=tmp_path / "missing.json"))


async def test_jwks_publishes_only_public_members(api: AuthApi) -> None:
    response = await api.client.get("/auth/.well-known/jwks.json")

    assert response.status_code == 200
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert set(key) == PUBLIC_RSA_MEMBERS
        assert key["alg"] == "RS256"
        assert key["use"] == "sig"
    assert '"d"' not in response.text


async def test_rotation_as_a_verifier_sees_it(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    path = tmp_path / "keys.json"
    keys_cli.main(["generate", "--file", str(path)])
    settings = make_settings(signing_keys_file=path)
    old_kid = SigningKeySet.load(path).active_kid

    async with serving(settings) as api:
        user = await api.register()
        old_token = (await api.tokens(user["email"]))["access_token"]

    keys_cli.main(["rotate", "--file", str(path), "--retire-after", "3600"])
    # A restart picks up the rotated file.
    async with started(create_app(settings)) as new_app, new_app.client() as client:
        jwks = (await client.get("/auth/.well-known/jwks.json")).json()
        assert {key["kid"] for key in jwks["keys"]} == {
            old_kid,
            SigningKeySet.load(path).active_kid,
        }
        new_token = (await AuthApi(client).tokens(user["email"]))["access_token"]
        transport = httpx2.ASGITransport(app=new_app)
        async with token_verifier(_verification_settings(), transport=transport) as verifier:
            assert (await verifier.verify(old_token)).subject == user["id"]
            assert (await verifier.verify(new_token)).subject == user["id"]

    # An hour later the old key is pruned; its tokens have expired and no longer verify.
    key_set = SigningKeySet.load(path)
    assert key_set.prune(now=time.time() + 3601) == [old_kid]
    key_set.save(path)
    async with started(create_app(settings)) as pruned_app, pruned_app.client() as client:
        jwks = (await client.get("/auth/.well-known/jwks.json")).json()
        assert old_kid not in {key["kid"] for key in jwks["keys"]}
        transport = httpx2.ASGITransport(app=pruned_app)
        async with token_verifier(_verification_settings(), transport=transport) as verifier:
            with pytest.raises(InvalidTokenError, match="unknown key id"):
                await verifier.verify(old_token)
            assert (await verifier.verify(new_token)).subject == user["id"]


def test_retired_key_leaves_the_jwks_at_its_retirement_time_even_unpruned() -> None:
    key_set = SigningKeySet.create()
    old = key_set.active_kid
    now = time.time()
    key_set.rotate(100, now=now)

    assert old in {key["kid"] for key in key_set.public_jwks(now=now + 99)["keys"]}
    assert old not in {key["kid"] for key in key_set.public_jwks(now=now + 100)["keys"]}


def test_key_set_file_round_trips(tmp_path: Path) -> None:
    key_set = SigningKeySet.create()
    key_set.rotate(60)
    path = tmp_path / "keys.json"
    key_set.save(path)

    document = json.loads(path.read_text())

    assert set(document) == {"active_kid", "keys", "retire_after"}
    assert SigningKeySet.load(path).to_document() == key_set.to_document()
