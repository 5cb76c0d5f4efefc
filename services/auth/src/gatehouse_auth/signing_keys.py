"""The signing key set: a private JWK set file with one active key.

File format (JSON, readable only by the service)::

    {
      "active_kid": "k-20261129-1a2b3c",
      "keys": [ {"kty": "RSA", "kid": "...", "alg": "RS256", "use": "sig", "n": ..., "d": ...} ],
      "retire_after": {"k-20261001-9f8e7d": 1764423000}
    }

``keys`` holds private RSA JWKs. ``retire_after`` maps the kid of a former signing key to the
Unix time after which it is no longer published (its last token has expired by then). The
active key never has a retirement time.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

ALGORITHM = "RS256"
RSA_KEY_BITS = 2048


class KeySetError(ValueError):
    """The key-set file is missing, unreadable or inconsistent."""


def new_kid(now: float | None = None) -> str:
    """A kid that sorts by creation date and is unique without coordination."""
    stamp = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return f"k-{stamp:%Y%m%d}-{secrets.token_hex(4)}"


def generate_key(kid: str | None = None) -> RSAKey:
    kid = kid or new_kid()
    return RSAKey.generate_key(
        RSA_KEY_BITS, parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"}, private=True
    )


@dataclass
class SigningKeySet:
    active_kid: str
    keys: dict[str, RSAKey]
    retire_after: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.active_kid not in self.keys:
            raise KeySetError(f"the active kid {self.active_kid!r} is not in the key set")
        if self.active_kid in self.retire_after:
            raise KeySetError("the active key must not have a retirement time")
        for kid, key in self.keys.items():
            if not key.is_private:
                raise KeySetError(f"key {kid!r} has no private part")
            if key.public_key.key_size < RSA_KEY_BITS:
                raise KeySetError(f"key {kid!r} is shorter than {RSA_KEY_BITS} bits")

    @classmethod
    def create(cls) -> SigningKeySet:
        key = generate_key()
        return cls(active_kid=str(key.kid), keys={str(key.kid): key})

    @classmethod
    def from_document(cls, document: Any) -> SigningKeySet:
        if not isinstance(document, Mapping):
            raise KeySetError("the key set is not a JSON object")
        active_kid = document.get("active_kid")
        entries = document.get("keys")
        retire_after = document.get("retire_after", {})
        if not isinstance(active_kid, str) or not isinstance(entries, list):
            raise KeySetError("the key set needs 'active_kid' and a 'keys' list")
        if not isinstance(retire_after, Mapping) or not all(
            isinstance(at, int) for at in retire_after.values()
        ):
            raise KeySetError("'retire_after' must map kids to Unix times")
        keys: dict[str, RSAKey] = {}
        for entry in entries:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("kid"), str):
                raise KeySetError("every key needs a 'kid'")
            if entry.get("kty") != "RSA" or entry.get("alg", ALGORITHM) != ALGORITHM:
                raise KeySetError(f"key {entry['kid']!r} is not an {ALGORITHM} RSA key")
            try:
                keys[entry["kid"]] = RSAKey.import_key(
                    dict(entry), parameters={"alg": ALGORITHM, "use": "sig"}
                )
            except (JoseError, ValueError, TypeError) as exc:
                raise KeySetError(f"key {entry['kid']!r} cannot be read") from exc
        return cls(active_kid=active_kid, keys=keys, retire_after=dict(retire_after))

    @classmethod
    def load(cls, path: Path) -> SigningKeySet:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KeySetError(f"cannot read the key set file {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise KeySetError(f"the key set file {path} is not JSON") from exc
        return cls.from_document(document)

    def to_document(self) -> dict[str, Any]:
        return {
            "active_kid": self.active_kid,
            "keys": [key.as_dict(private=True) for key in self.keys.values()],
            "retire_after": dict(self.retire_after),
        }

    def save(self, path: Path) -> None:
        """Write atomically with mode 0600, so a reader never sees half a key set."""
        directory = path.parent
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(self.to_document(), file, indent=2)
                file.write("\n")
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @property
    def active_key(self) -> RSAKey:
        return self.keys[self.active_kid]

    def add(self, now: float | None = None) -> str:
        """Add a new key that is published but does not sign yet; returns its kid.

        Publishing first lets every verifier fetch the key before any token carries it.
        """
        key = generate_key(new_kid(now))
        kid = str(key.kid)
        self.keys[kid] = key
        return kid

    def activate(self, kid: str, retire_in_seconds: int, now: float | None = None) -> None:
        """Make ``kid`` the signing key; the previous one stays published ``retire_in_seconds``."""
        if kid not in self.keys:
            raise KeySetError(f"no key {kid!r} in the key set")
        if kid == self.active_kid:
            raise KeySetError(f"{kid!r} is already the signing key")
        now = time.time() if now is None else now
        self.retire_after.pop(kid, None)
        self.retire_after[self.active_kid] = int(now) + retire_in_seconds
        self.active_kid = kid

    def rotate(self, retire_in_seconds: int, now: float | None = None) -> str:
        """Add a key and make it the signing key at once (``add`` then ``activate``)."""
        kid = self.add(now)
        self.activate(kid, retire_in_seconds, now)
        return kid

    def prune(self, now: float | None = None) -> list[str]:
        """Drop the keys whose retirement time has passed; returns their kids."""
        now = time.time() if now is None else now
        expired = [kid for kid, at in self.retire_after.items() if at <= now]
        for kid in expired:
            self.keys.pop(kid, None)
            del self.retire_after[kid]
        return expired

    def public_jwks(self, now: float | None = None) -> dict[str, Any]:
        """Every key that may still verify a live token, public members only."""
        now = time.time() if now is None else now
        return {
            "keys": [
                key.as_dict(private=False)
                for kid, key in self.keys.items()
                if self.retire_after.get(kid, now + 1) > now
            ]
        }


class AccessTokenSigner:
    """Signs access tokens (RFC 9068) with the active key of a key set."""

    def __init__(
        self,
        key_set: SigningKeySet,
        *,
        issuer: str,
        audience: str,
        lifetime_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key_set = key_set
        self._issuer = issuer
        self._audience = audience
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock

    def sign(
        self, *, subject: str, email: str, email_verified: bool, session_id: str, scope: str
    ) -> str:
        now = int(self._clock())
        key = self.key_set.active_key
        header = {"alg": ALGORITHM, "typ": "at+jwt", "kid": self.key_set.active_kid}
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "email": email,
            "email_verified": email_verified,
            "sid": session_id,
            "iat": now,
            "exp": now + self.lifetime_seconds,
            "jti": secrets.token_hex(16),
            "scope": scope,
        }
        return jwt.encode(header, claims, key, algorithms=[ALGORITHM])
