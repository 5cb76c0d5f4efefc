"""An async JWKS client: keys in memory, refreshed in the background, kept while auth is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import httpx2
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey, RSAKey, import_key
from prometheus_client import Counter, Gauge

from gatehouse_common.logging import get_logger

VerificationKey = RSAKey | OKPKey

_log = get_logger(__name__)

# The JwksRefreshFailing alert needs both: failures alone may be a blip, and an old success
# alone may be an idle service (the set is refreshed only when tokens are verified).
JWKS_REFRESH_FAILURES = Counter(
    "jwks_refresh_failures_total", "JWKS fetches that failed; the last good keys stayed in use."
)
JWKS_LAST_SUCCESS = Gauge(
    "jwks_last_success_timestamp_seconds",
    "Unix time of the last successful JWKS fetch (0: none yet).",
)

# kty a verification key may have, by JWS algorithm. HS* is absent on purpose: a symmetric
# key built from public material is the classic algorithm-confusion attack.
_KEY_TYPE_FOR_ALGORITHM = {"RS256": "RSA", "EdDSA": "OKP"}


class JWKSClient:
    """Resolves a ``kid`` to a public key from the issuer's JWKS.

    - Keys live in memory; a lookup of a known ``kid`` never waits on the network.
    - After ``ttl`` the set is refreshed in the background while the old keys keep serving.
    - An unknown ``kid`` triggers a refetch, at most once per ``min_refetch_interval``, so a
      flood of tokens with made-up ``kid`` values cannot turn into a flood of JWKS requests.
    - A failed fetch keeps the last good keys: verification goes on while the issuer is down.
    """

    def __init__(  # noqa: PLR0913 - keyword-only tuning knobs with defaults
        self,
        url: str,
        http: httpx2.AsyncClient,
        *,
        algorithms: Collection[str],
        ttl: float = 300.0,
        min_refetch_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._http = http
        self._algorithms = frozenset(algorithms)
        self._ttl = ttl
        self._min_refetch_interval = min_refetch_interval
        self._clock = clock
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[bool] | None = None

    @property
    def loaded(self) -> bool:
        """True once a fetch has succeeded (the gateway's readiness condition)."""
        return self._fetched_at is not None

    def knows(self, kid: str) -> bool:
        return kid in self._keys

    async def key(self, kid: str) -> VerificationKey | None:
        if self._fetched_at is None:
            await self.refresh(force=False)
        elif self._clock() - self._fetched_at >= self._ttl:
            self._refresh_in_background()
        key = self._keys.get(kid)
        if key is None and self._may_refetch():
            await self.refresh(force=False)
            key = self._keys.get(kid)
        return key

    async def refresh(self, *, force: bool = True) -> bool:
        """Fetch the key set once (concurrent callers share one request). True on success."""
        async with self._lock:
            if not force and not self._may_refetch():
                return False
            self._attempted_at = self._clock()
            try:
                response = await self._http.get(self._url, headers={"accept": "application/json"})
                response.raise_for_status()
                keys = self._parse(response.json())
            except (httpx2.HTTPError, ValueError) as exc:
                _log.warning(
                    "jwks_fetch_failed",
                    url=self._url,
                    error=type(exc).__name__,
                    kept_keys=len(self._keys),
                )
                JWKS_REFRESH_FAILURES.inc()
                return False
            self._keys = keys
            self._fetched_at = self._clock()
            JWKS_LAST_SUCCESS.set_to_current_time()
            return True

    async def aclose(self) -> None:
        if self._background is not None:
            self._background.cancel()

    def _may_refetch(self) -> bool:
        return (
            self._attempted_at is None
            or self._clock() - self._attempted_at >= self._min_refetch_interval
        )

    def _refresh_in_background(self) -> None:
        if (self._background is None or self._background.done()) and self._may_refetch():
            self._background = asyncio.create_task(self.refresh(force=False))

    def _parse(self, document: Any) -> dict[str, VerificationKey]:
        if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWK set")
        keys: dict[str, VerificationKey] = {}
        for entry in document["keys"]:
            key = self._verification_key(entry)
            if key is not None and key.kid is not None:
                keys[key.kid] = key
        return keys

    def _verification_key(self, entry: Any) -> VerificationKey | None:
        """A public key from one JWK, or None for anything not usable for our signatures."""
        if not isinstance(entry, Mapping) or not isinstance(entry.get("kid"), str):
            return None
        algorithm = entry.get("alg")
        if algorithm not in self._algorithms or entry.get("use", "sig") != "sig":
            return None
        if entry.get("kty") != _KEY_TYPE_FOR_ALGORITHM.get(str(algorithm)):
            return None
        try:
            key = import_key(dict(entry))
        except (JoseError, ValueError, TypeError):
            return None
        if not isinstance(key, RSAKey | OKPKey):
            return None
        # Keep only public members, whatever the document carried.
        public = import_key(key.as_dict(private=False))
        return public if isinstance(public, RSAKey | OKPKey) else None
