"""Administrator tasks: ``python -m gatehouse_auth.cli.admin COMMAND``.

``create-admin EMAIL`` grants ``admin`` to the identity with that email (any spelling of it),
or creates it as an administrator. A new identity's password comes from
``AUTH_ADMIN_PASSWORD`` if set, else from standard input (one line; prompted for twice on a
terminal). ``normalize-emails`` rewrites stored emails into their one spelling, as auth does
at start-up, and fails if two identities share an address. Reads the service's
``AUTH_MONGO_*`` settings.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from pydantic import TypeAdapter, ValidationError
from pymongo.errors import ConnectionFailure

from gatehouse_auth.cli.outcome import report
from gatehouse_auth.database import AuthDatabase, mongo_client
from gatehouse_auth.identities import service
from gatehouse_auth.identities.errors import EmailTaken
from gatehouse_auth.identities.repository import (
    ADMIN_ROLE,
    IdentityRepository,
)
from gatehouse_auth.identities.schemas import Password
from gatehouse_auth.identities.stored_emails import StoredEmailCollision, normalize_stored_emails
from gatehouse_auth.passwords import PasswordHasher
from gatehouse_auth.settings import IdentityStoreSettings
from gatehouse_common.settings import load_settings
from gatehouse_common.text import EmailAddress

PASSWORD_ENV = "AUTH_ADMIN_PASSWORD"  # noqa: S105 - the variable's name, not its value


class AdminCliError(Exception):
    pass


def _read_password(stdin: TextIO) -> str:
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        password = from_env
    elif stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat: ") != password:
            raise AdminCliError("the passwords differ")
    else:
        password = stdin.readline().rstrip("\r\n")
    try:
        return TypeAdapter(Password).validate_python(password)
    except ValidationError:
        raise AdminCliError("the password must have 10 to 128 characters") from None


async def create_admin(settings: IdentityStoreSettings, raw_email: str, stdin: TextIO) -> str:
    try:
        email = TypeAdapter(EmailAddress).validate_python(raw_email)
    except ValidationError:
        raise AdminCliError(f"not an email address: {raw_email!r}") from None
    client = mongo_client(settings)
    try:
        database = AuthDatabase(client, settings.mongo_database)
        await database.ensure_indexes()
        identities = IdentityRepository(database.identities)
        granted = await identities.grant_role(email, ADMIN_ROLE, datetime.now(UTC))
        if granted is not None:
            return f"granted admin to {granted.email} ({granted.id})"
        password = _read_password(stdin)
        try:
            identity = await service.register(
                identities,
                PasswordHasher(settings),
                email=email,
                password=password,
                roles=[ADMIN_ROLE],
            )
        except EmailTaken:
            raise AdminCliError(f"{email} was registered meanwhile; run again") from None
        return f"created administrator {identity.email} ({identity.id})"
    finally:
        await client.close()


async def normalize_emails(settings: IdentityStoreSettings) -> str:
    client = mongo_client(settings)
    try:
        identities = IdentityRepository(AuthDatabase(client, settings.mongo_database).identities)
        try:
            rewritten = await normalize_stored_emails(identities)
        except StoredEmailCollision as exc:
            raise AdminCliError(
                "identities share one email address (ids per address, nothing was rewritten): "
                f"{exc.identity_ids}"
            ) from None
        return f"rewrote {rewritten} stored email(s) into their one spelling"
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gatehouse-auth-admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-admin", help="create an administrator or grant admin")
    create.add_argument("email")
    commands.add_parser(
        "normalize-emails", help="rewrite stored emails into their one spelling (as at start-up)"
    )
    args = parser.parse_args(argv)
    settings = load_settings(IdentityStoreSettings)

    def run() -> str:
        try:
            if args.command == "create-admin":
                return asyncio.run(create_admin(settings, args.email, sys.stdin))
            return asyncio.run(normalize_emails(settings))
        except ConnectionFailure as exc:
            raise AdminCliError(f"MongoDB is not reachable ({type(exc).__name__})") from None

    return report(run, AdminCliError)


if __name__ == "__main__":
    sys.exit(main())
