"""Signing keys: ``python -m gatehouse_auth.cli.keys generate|add|activate|rotate|prune|show``.

The file defaults to ``AUTH_SIGNING_KEYS_FILE``; the retirement delay of ``rotate`` defaults to
``AUTH_ACCESS_TOKEN_TTL_SECONDS`` plus a minute, so the old key stays published until the last
token it signed has expired. The running service reads the file at start: restart it (a
rolling restart) after each change.

With several replicas, rotate in two steps so that no verifier meets a token signed with a key
it has not fetched yet: ``add`` (the new key is published, the old one still signs), roll out,
wait for the verifiers' JWKS refresh, then ``activate KID`` and roll out again.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gatehouse_auth.cli.outcome import report
from gatehouse_auth.signing_keys import KeySetError, SigningKeySet

# Tokens are checked with a small clock leeway; keep old keys a little longer than that.
RETIREMENT_MARGIN_SECONDS = 60


class KeysCliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore")

    signing_keys_file: Path | None = None
    access_token_ttl_seconds: int = Field(default=900, ge=60)


def _parser(settings: KeysCliSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatehouse-auth-keys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--file",
            type=Path,
            default=settings.signing_keys_file,
            required=settings.signing_keys_file is None,
            help="private key-set file (default: $AUTH_SIGNING_KEYS_FILE)",
        )
        return sub

    generate = command("generate", "create a new key-set file with one fresh key")
    generate.add_argument("--force", action="store_true", help="overwrite an existing file")
    command("add", "add a key that is published but does not sign yet")
    activate = command("activate", "make a published key the signing key")
    activate.add_argument("kid", help="the key to sign with from now on")
    rotate = command("rotate", "make a new key the signing key, keep the old one for a while")
    for sub in (activate, rotate):
        sub.add_argument(
            "--retire-after",
            type=int,
            default=settings.access_token_ttl_seconds + RETIREMENT_MARGIN_SECONDS,
            metavar="SECONDS",
            help="how long the previous key stays published (default: token TTL + 60 s)",
        )
    command("prune", "remove the keys whose retirement time has passed")
    command("show", "list the key ids, which one signs, and when the others retire")
    return parser


def _describe(key_set: SigningKeySet) -> str:
    lines = []
    for kid in key_set.keys:
        if kid == key_set.active_kid:
            state = "active"
        elif kid not in key_set.retire_after:
            state = "published, not signing yet"
        else:
            at = datetime.fromtimestamp(key_set.retire_after[kid], UTC)
            state = f"published until {at:%Y-%m-%dT%H:%M:%SZ}"
        lines.append(f"{kid}\t{state}")
    return "\n".join(lines)


def run(argv: Sequence[str] | None = None) -> str:
    """Run one command; returns what to print. Raises ``KeySetError`` on a bad file."""
    settings = KeysCliSettings()
    args = _parser(settings).parse_args(argv)
    path: Path = args.file
    if args.command == "generate":
        if path.exists() and not args.force:
            raise KeySetError(f"{path} exists; use --force to replace it")
        key_set = SigningKeySet.create()
        key_set.save(path)
        return f"created {path} with active key {key_set.active_kid}"
    key_set = SigningKeySet.load(path)
    if args.command == "add":
        kid = key_set.add(now=time.time())
        key_set.save(path)
        return f"added {kid}: published, not signing yet; activate it once verifiers have it"
    if args.command in {"activate", "rotate"}:
        if args.retire_after < 0:
            raise KeySetError("--retire-after must not be negative")
        previous = key_set.active_kid
        if args.command == "rotate":
            kid = key_set.rotate(args.retire_after, now=time.time())
        else:
            kid = args.kid
            key_set.activate(kid, args.retire_after, now=time.time())
        key_set.save(path)
        return f"active key is now {kid}; {previous} stays published for {args.retire_after}s"
    if args.command == "prune":
        removed = key_set.prune(now=time.time())
        key_set.save(path)
        return f"removed {', '.join(removed)}" if removed else "nothing to remove"
    return _describe(key_set)


def main(argv: Sequence[str] | None = None) -> int:
    return report(lambda: run(argv), KeySetError)


if __name__ == "__main__":
    sys.exit(main())
