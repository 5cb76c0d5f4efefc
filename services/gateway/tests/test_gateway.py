"""The contract's gateway behaviour, through an in-process gateway and a real upstream server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import httpx2
import pytest
from aiohttp.client_reqrep import ConnectionKey
from joserfc.jwk import RSAKey
from prometheus_client import REGISTRY
from pydantic import ValidationError

from gatehouse_common.settings import HttpServerSettings
from gatehouse_gateway.openapi import merge_documents
from gatehouse_gateway.routing import PUBLIC_ROUTES, RouteTable, Upstream
from gatehouse_gateway.settings import GatewaySettings
from gatehouse_gateway.upstream import Failure, aiohttp_failure, httpx2_failure
from gatehouse_testing.app import started
from gatehouse_testing.dependencies import sync_dependencies
from gatehouse_testing.hostile_tokens import bearer_header_bytes, hostile_tokens
from gatehouse_testing.issuer import JWKS_URL, TestIssuer
from gatehouse_testing.problems import assert_problem, bearer
from gatehouse_testing.servers import ServerThread
from services.gateway.tests.support import AppFactory, GatewayFactory, UpstreamStub


def echoed_headers(response: httpx2.Response) -> dict[str, list[str]]:
    """The request headers the stub upstream received, by lower-case name."""
    assert response.headers.get("x-upstream") == "stub", response.text
    headers: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        headers.setdefault(name, []).append(value)
    return headers


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(issuer: TestIssuer, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": "attacker",
        "iat": now,
        "exp": now + 600,
        "jti": "j1",
        "scope": "users:read users:write admin",
        **extra,
    }


def unsigned_token(issuer: TestIssuer) -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": issuer.active_kid}
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims(issuer)).encode())}."


def hs256_with_public_key(issuer: TestIssuer) -> str:
    """The algorithm-confusion attack: HMAC keyed with the issuer's public key."""
    public_pem = issuer.keys[issuer.active_kid].as_pem(private=False)
    header = {"alg": "HS256", "typ": "at+jwt", "kid": issuer.active_kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims(issuer)).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def attacker_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"})


def embedded_jwk_token(issuer: TestIssuer) -> str:
    """Signed by the attacker, carrying the attacker's public key in its header."""
    key = attacker_key()
    return issuer.mint(key=key, header={"jwk": key.as_dict(private=False)})


# ----------------------------------------------------------------------------------------------
# Authentication at the edge


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Basic dXNlcjpwYXNz"}],
    ids=["no token", "a non-bearer authorization"],
)
async def test_no_bearer_token_is_401_with_a_bearer_challenge(
    gateway: httpx2.AsyncClient, upstream: UpstreamStub, headers: dict[str, str]
) -> None:
    hits = upstream.hits
    response = await gateway.get("/users/me", headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert upstream.hits == hits


async def test_a_valid_token_reaches_the_upstream_with_its_authorization(
    gateway: httpx2.AsyncClient, issuer: TestIssuer
) -> None:
    token = issuer.mint()
    response = await gateway.get("/users/me", headers=bearer(token))
    assert response.status_code == 200
    assert echoed_headers(response)["authorization"] == [f"Bearer {token}"]
    assert response.json()["path"] == "/users/me"


ATTACKS: dict[str, Callable[[TestIssuer], str]] = {
    "alg none": unsigned_token,
    "HS256 signed with the public key": hs256_with_public_key,
    "unknown kid": lambda issuer: issuer.mint(header={"kid": "no-such-kid"}, key=attacker_key()),
    "attacker key with a known kid": lambda issuer: issuer.mint(key=attacker_key()),
    "embedded jwk": embedded_jwk_token,
    "jku header": lambda issuer: issuer.mint(
        key=attacker_key(),
        header={"kid": "attacker-kid", "jku": "http://attacker.test/jwks.json"},
    ),
    "x5u header": lambda issuer: issuer.mint(
        key=attacker_key(),
        header={"kid": "attacker-kid", "x5u": "http://attacker.test/cert.pem"},
    ),
    "wrong iss": lambda issuer: issuer.mint(claims={"iss": "https://evil.test"}),
    "wrong aud": lambda issuer: issuer.mint(claims={"aud": "someone-else"}),
    "expired beyond leeway": lambda issuer: issuer.mint(lifetime=-120),
    "missing exp": lambda issuer: issuer.mint(claims={"exp": None}),
    "not an access token (typ JWT)": lambda issuer: issuer.mint(header={"typ": "JWT"}),
    "malformed": lambda _: "not-a-jwt",
    "garbage segments": lambda _: "a.b.c",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_a_forged_or_invalid_token_is_401_invalid_token(
    make_gateway: GatewayFactory, issuer: TestIssuer, upstream: UpstreamStub, attack: str
) -> None:
    fetched: list[str] = []
    jwks = issuer.transport()

    async def recording(request: httpx2.Request) -> httpx2.Response:
        fetched.append(str(request.url))
        return await jwks.handle_async_request(request)

    async with make_gateway(jwks_transport=httpx2.MockTransport(recording)) as gateway:
        token = ATTACKS[attack](issuer)
        hits = upstream.hits
        response = await gateway.get("/users/me", headers=bearer(token))
    problem = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert "not valid" in problem["detail"]
    assert upstream.hits == hits, "a rejected request must not reach the upstream"
    # Only the configured JWKS URL is ever fetched: never a jku/x5u URL from the token.
    assert set(fetched) <= {JWKS_URL}


@pytest.mark.parametrize("shape", list(hostile_tokens(TestIssuer())))
async def test_a_token_of_any_shape_is_401_invalid_token_never_a_500(
    gateway: httpx2.AsyncClient, issuer: TestIssuer, upstream: Any, shape: str
) -> None:
    hits = upstream.hits
    token = hostile_tokens(issuer)[shape]
    response = await gateway.get("/users/me", headers=bearer_header_bytes(token))
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert upstream.hits == hits


async def test_a_token_expired_within_the_leeway_is_accepted(
    gateway: httpx2.AsyncClient, issuer: TestIssuer
) -> None:
    response = await gateway.get("/users/me", headers=bearer(issuer.mint(lifetime=-5)))
    assert response.status_code == 200


async def test_scopes_are_left_to_the_upstream(
    gateway: httpx2.AsyncClient, issuer: TestIssuer, upstream: UpstreamStub
) -> None:
    hits = upstream.hits
    response = await gateway.delete("/users/8d5e0b7c", headers=bearer(issuer.mint(scopes="")))

    assert response.status_code == 200  # the stub checks no scope; users would answer 403
    assert upstream.hits == hits + 1


async def test_an_upstream_insufficient_scope_answer_reaches_the_client(
    gateway: httpx2.AsyncClient, issuer: TestIssuer
) -> None:
    response = await gateway.get("/users/forbidden", headers=bearer(issuer.mint()))

    assert_problem(response, 403)
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="admin"'
    )


@pytest.mark.parametrize(
    ("method", "path", "scopes"),
    [
        ("GET", "/users/me", "users:read"),
        ("PATCH", "/users/me", "users:write"),
        ("GET", "/users", "admin"),
        ("DELETE", "/users/8d5e0b7c", "admin"),
    ],
)
async def test_a_token_with_the_route_scope_is_proxied(
    gateway: httpx2.AsyncClient, issuer: TestIssuer, method: str, path: str, scopes: str
) -> None:
    response = await gateway.request(method, path, headers=bearer(issuer.mint(scopes=scopes)))
    assert response.status_code == 200
    assert response.json()["method"] == method


@pytest.mark.parametrize(("method", "path"), sorted(PUBLIC_ROUTES))
async def test_public_routes_need_no_token(
    gateway: httpx2.AsyncClient, method: str, path: str
) -> None:
    response = await gateway.request(method, path)
    assert response.status_code == 200, response.text
    assert response.headers.get("x-upstream") == "stub" or "keys" in response.json()


async def test_other_auth_routes_need_a_token(gateway: httpx2.AsyncClient) -> None:
    assert_problem(await gateway.get("/auth/sessions"), 401)
    assert_problem(await gateway.get("/auth/token"), 401)  # only POST is public
    assert_problem(await gateway.post("/auth/verify/resend"), 401)
    assert_problem(await gateway.get("/auth/password/reset"), 401)


async def test_tokens_stay_valid_while_auth_is_unreachable(
    make_gateway: GatewayFactory, issuer: TestIssuer
) -> None:
    async with make_gateway(
        jwks_cache_ttl_seconds=0.01, jwks_min_refetch_interval_seconds=0
    ) as gateway:
        before = issuer.mint()
        assert (await gateway.get("/users/me", headers=bearer(before))).status_code == 200
        issuer.jwks_available = False
        requests_before = issuer.jwks_requests
        await asyncio.sleep(0.05)  # past the TTL: the next lookup refetches, and fails
        fresh = issuer.mint()  # never seen, so verified with the cached keys
        for token in (before, fresh, issuer.mint()):
            response = await gateway.get("/users/me", headers=bearer(token))
            assert response.status_code == 200, response.text
        assert issuer.jwks_requests > requests_before, "the gateway did try to refetch"
        assert (await gateway.get("/ready")).status_code == 200
        forged = issuer.mint(key=attacker_key())
        assert_problem(await gateway.get("/users/me", headers=bearer(forged)), 401)


async def test_unknown_kid_refetches_at_most_once_per_interval(
    make_gateway: GatewayFactory, issuer: TestIssuer
) -> None:
    async with make_gateway(jwks_min_refetch_interval_seconds=60) as gateway:
        requests_before = issuer.jwks_requests
        for index in range(5):
            token = issuer.mint(header={"kid": f"made-up-{index}"}, key=attacker_key())
            assert_problem(await gateway.get("/users/me", headers=bearer(token)), 401)
        assert issuer.jwks_requests - requests_before <= 1


async def test_a_rotated_in_key_is_picked_up_by_refetch(
    make_gateway: GatewayFactory, issuer: TestIssuer
) -> None:
    async with make_gateway(jwks_min_refetch_interval_seconds=0) as gateway:
        issuer.active_kid = issuer.add_key()
        response = await gateway.get("/users/me", headers=bearer(issuer.mint()))
        assert response.status_code == 200


# ----------------------------------------------------------------------------------------------
# Health, readiness, what is not exposed


async def test_health_and_ready(gateway: httpx2.AsyncClient) -> None:
    assert (await gateway.get("/health")).json() == {"status": "ok"}
    ready = await gateway.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"jwks": "ok", "events": "ok"}


async def test_ready_is_503_until_the_jwks_is_loaded(
    make_gateway: GatewayFactory, issuer: TestIssuer
) -> None:
    issuer.jwks_available = False
    async with make_gateway(jwks_min_refetch_interval_seconds=0) as gateway:
        problem = assert_problem(await gateway.get("/ready"), 503)
        assert problem["failing"] == ["jwks"]
        assert "jwks" in problem["detail"]
        token = issuer.mint()
        refused = await gateway.get("/users/me", headers=bearer(token))
        assert "not loaded" in assert_problem(refused, 503)["detail"]
        assert refused.headers["retry-after"] == "5"
        issuer.jwks_available = True
        assert (await gateway.get("/ready")).status_code == 200
        assert (await gateway.get("/users/me", headers=bearer(token))).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/nowhere",
        "/usersx/me",
        "/authority",
        "/auth/%2e%2e/metrics",
        "/users/%2E%2E/health",
        "/users/..%2Fmetrics",
        "/users/.%2e/ready",
        "/users/%2e/me",
        "/users/..%5Cmetrics",
    ],
)
async def test_gateway_and_upstream_root_endpoints_are_not_exposed(
    gateway: httpx2.AsyncClient, issuer: TestIssuer, upstream: UpstreamStub, path: str
) -> None:
    hits = upstream.hits
    response = await gateway.get(path, headers=bearer(issuer.mint(scopes="users:read admin")))
    assert_problem(response, 404)
    assert upstream.hits == hits


@pytest.mark.parametrize("raw_path", [b"/auth/../metrics", b"/users/./../health", b"/users/.."])
async def test_literal_dot_segments_are_not_routed(
    gateway_app: AppFactory, upstream: UpstreamStub, raw_path: bytes
) -> None:
    """Sent as raw ASGI, because HTTP clients normalise dot segments away before sending."""
    app = gateway_app()
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path.decode(),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"gateway.test")],
        "client": ("127.0.0.1", 50000),
        "server": ("gateway.test", 80),
    }
    hits = upstream.hits
    async with started(app) as running:
        await running(scope, receive, send)
    assert messages[0]["status"] == 404
    assert upstream.hits == hits


# ----------------------------------------------------------------------------------------------
# Proxying: headers, paths, bodies


async def test_forwarding_headers_request_id_and_trace_context(
    gateway: httpx2.AsyncClient, issuer: TestIssuer
) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = await gateway.get(
        "/users/me",
        headers={
            **bearer(issuer.mint()),
            "x-request-id": "req-123",
            "traceparent": traceparent,
            "connection": "x-drop-me, keep-alive",
            "x-drop-me": "1",
            "keep-alive": "timeout=5",
            "te": "trailers",
            "expect": "100-continue",
            "proxy-authorization": "Basic c2VjcmV0",
            "x-forwarded-for": "6.6.6.6",
            "x-forwarded-host": "evil.test",
            "x-forwarded-proto": "https",
            "forwarded": "for=6.6.6.6",
            "x-real-ip": "6.6.6.6",
            "x-user-id": "admin",
            "x-auth-request-email": "admin@example.com",
            "x-forwarded-user": "admin",
            "remote-user": "admin",
            "x-scopes": "admin",
            "x-custom": "kept",
        },
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-123"
    seen = echoed_headers(response)
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == ["gateway.test"]
    assert seen["x-request-id"] == ["req-123"]
    assert seen["traceparent"] == [traceparent]
    assert seen["x-custom"] == ["kept"]
    for dropped in (
        "x-drop-me",
        "keep-alive",
        "te",
        "expect",
        "proxy-authorization",
        "forwarded",
        "x-real-ip",
        "x-user-id",
        "x-auth-request-email",
        "x-forwarded-user",
        "remote-user",
        "x-scopes",
    ):
        assert dropped not in seen, dropped


async def test_a_request_id_is_generated_when_absent_or_malformed(
    gateway: httpx2.AsyncClient, issuer: TestIssuer
) -> None:
    for headers in ({}, {"x-request-id": "bad id\twith spaces"}):
        response = await gateway.get("/users/me", headers={**bearer(issuer.mint()), **headers})
        generated = response.headers["x-request-id"]
        assert generated
        assert generated != headers.get("x-request-id")
        assert echoed_headers(response)["x-request-id"] == [generated]


async def test_a_trusted_proxy_forwarding_headers_are_extended(
    make_gateway: GatewayFactory, issuer: TestIssuer
) -> None:
    async with make_gateway(trusted_proxies="10.0.0.0/8", client=("10.1.2.3", 4000)) as gateway:
        response = await gateway.get(
            "/users/me",
            headers={
                **bearer(issuer.mint()),
                "x-forwarded-for": "203.0.113.9",
                "x-forwarded-proto": "https",
                "x-forwarded-host": "api.example.com",
            },
        )
    seen = echoed_headers(response)
    assert seen["x-forwarded-for"] == ["203.0.113.9, 10.1.2.3"]
    assert seen["x-forwarded-proto"] == ["https"]
    assert seen["x-forwarded-host"] == ["api.example.com"]


async def test_response_hop_by_hop_headers_are_stripped(
    gateway: httpx2.AsyncClient, issuer: TestIssuer
) -> None:
    response = await gateway.get("/users/hop", headers=bearer(issuer.mint()))
    assert response.status_code == 200
    assert response.headers["x-kept"] == "yes"
    assert "x-secret-hop" not in response.headers
    assert "keep-alive" not in response.headers


async def test_path_and_query_are_forwarded_without_rewriting(
    gateway: httpx2.AsyncClient, issuer: TestIssuer
) -> None:
    response = await gateway.get(
        "/users/a%2Fb%20c?limit=5&cursor=x%3D%3D", headers=bearer(issuer.mint())
    )
    echoed = response.json()
    assert echoed["raw_path"] == "/users/a%2Fb%20c"
    assert echoed["query"] == "limit=5&cursor=x%3D%3D"


async def test_request_bodies_are_streamed_to_the_upstream(
    gateway: httpx2.AsyncClient, issuer: TestIssuer
) -> None:
    payload = bytes(range(256)) * 3000  # 750 KiB

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 64 * 1024):
            yield payload[start : start + 64 * 1024]

    for content in (payload, chunks()):
        response = await gateway.patch("/users/me", headers=bearer(issuer.mint()), content=content)
        assert response.status_code == 200, response.text
        assert response.json()["body_length"] == len(payload)
        assert response.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()


async def test_a_body_over_the_limit_by_content_length_is_413(
    gateway: httpx2.AsyncClient, upstream: UpstreamStub
) -> None:
    hits = upstream.hits
    response = await gateway.post("/auth/register", content=b"x" * (1024 * 1024 + 1))
    assert_problem(response, 413)
    assert upstream.hits == hits


async def test_a_streamed_body_over_the_limit_is_413(
    gateway: httpx2.AsyncClient, issuer: TestIssuer
) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(40):  # 2.5 MiB, no Content-Length
            sent += 64 * 1024
            yield b"x" * 64 * 1024

    response = await gateway.patch("/users/me", headers=bearer(issuer.mint()), content=endless())
    assert_problem(response, 413)


async def test_a_body_exactly_at_the_limit_passes(gateway: httpx2.AsyncClient) -> None:
    response = await gateway.post("/auth/register", content=b"x" * 1024 * 1024)
    assert response.status_code == 200
    assert response.json()["body_length"] == 1024 * 1024


async def test_large_responses_stream_through(
    gateway: httpx2.AsyncClient, issuer: TestIssuer
) -> None:
    response = await gateway.get("/users/big?mib=8", headers=bearer(issuer.mint()))
    assert response.status_code == 200
    assert len(response.content) == 8 * 1024 * 1024
    assert response.headers["content-length"] == str(8 * 1024 * 1024)


# ----------------------------------------------------------------------------------------------
# CORS


async def test_cors_allows_only_configured_origins(
    make_gateway: GatewayFactory, issuer: TestIssuer
) -> None:
    async with make_gateway(cors_origins="https://app.example.com") as gateway:
        preflight = {"access-control-request-method": "PATCH"}
        allowed = await gateway.options(
            "/users/me", headers={"origin": "https://app.example.com", **preflight}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "access-control-allow-credentials" not in allowed.headers

        refused = await gateway.options(
            "/users/me", headers={"origin": "https://evil.example.com", **preflight}
        )
        assert "access-control-allow-origin" not in refused.headers

        simple = await gateway.get(
            "/users/me",
            headers={"origin": "https://app.example.com", **bearer(issuer.mint())},
        )
        assert simple.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


async def test_no_cors_headers_without_configured_origins(gateway: httpx2.AsyncClient) -> None:
    response = await gateway.get("/health", headers={"origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in response.headers


def test_a_wildcard_cors_origin_is_refused(upstream_url: str) -> None:
    with pytest.raises(ValidationError, match="not allowed"):
        GatewaySettings(
            auth_url=upstream_url,
            users_url=upstream_url,
            events_redis_url="redis://redis:6379/0",
            jwt_issuer="i",
            jwt_audience="a",
            jwks_url=JWKS_URL,
            cors_origins="*",
        )


# ----------------------------------------------------------------------------------------------
# Failure mapping


def failures(kind: str) -> float:
    value = REGISTRY.get_sample_value(
        "gateway_upstream_failures_total", {"upstream": "users", "kind": kind}
    )
    return value or 0.0


async def test_an_unreachable_upstream_is_502_then_503_when_the_circuit_opens(
    make_gateway: GatewayFactory, issuer: TestIssuer, closed_port_url: str
) -> None:
    token = issuer.mint()
    async with make_gateway(
        users_url=closed_port_url, circuit_failure_threshold=2, circuit_open_seconds=30
    ) as gateway:
        before = failures("connect")
        started = time.monotonic()
        first = await gateway.get("/users/me", headers=bearer(token))
        assert time.monotonic() - started < 2
        problem = assert_problem(first, 502)
        assert "users" in problem["detail"]
        assert failures("connect") - before == 1, "no restart grace: not tried again"

        post = await gateway.post("/users/me", headers=bearer(token), content=b"{}")
        assert_problem(post, 502)
        assert failures("connect") - before == 2

        started = time.monotonic()
        opened = await gateway.get("/users/me", headers=bearer(token))
        assert time.monotonic() - started < 2
        assert_problem(opened, 503)
        assert 0 < int(opened.headers["retry-after"]) <= 30
        assert failures("connect") - before == 2, "an open circuit does not try the upstream"

        auth = await gateway.post("/auth/token")
        assert auth.status_code == 200, "one upstream's circuit does not affect another"


def test_idle_upstream_connections_are_dropped_before_the_services_drop_them() -> None:
    """A connection the gateway keeps idle longer than the service does can be reused just as
    the service closes it: the request on it breaks (a 502 the chaos run saw every few
    seconds). The defaults must keep the gateway's side the shorter."""
    kept_by_gateway = GatewaySettings.model_fields["upstream_keepalive_seconds"].default
    kept_by_services = HttpServerSettings.model_fields["http_keep_alive_seconds"].default
    assert kept_by_gateway < kept_by_services


async def test_a_slow_upstream_is_504(make_gateway: GatewayFactory, issuer: TestIssuer) -> None:
    async with make_gateway(upstream_read_timeout_seconds=0.5) as gateway:
        started = time.monotonic()
        response = await gateway.get("/users/slow?seconds=3", headers=bearer(issuer.mint()))
        elapsed = time.monotonic() - started
    problem = assert_problem(response, 504)
    assert "users" in problem["detail"]
    assert elapsed < 2


async def test_an_upstream_that_comes_back_is_used_again_and_its_docs_appear(
    make_gateway: GatewayFactory, issuer: TestIssuer, restartable_upstream: Any
) -> None:
    async with make_gateway(
        users_url=restartable_upstream.url, circuit_failure_threshold=1, circuit_open_seconds=0.3
    ) as gateway:
        docs = (await gateway.get("/openapi.json")).json()
        assert "/users/hop" not in docs["paths"]
        assert_problem(await gateway.get("/users/me", headers=bearer(issuer.mint())), 502)

        restartable_upstream.start()
        await asyncio.sleep(0.4)  # the circuit's cool-down
        response = await gateway.get("/users/me", headers=bearer(issuer.mint()))
        assert response.status_code == 200
        for _ in range(50):
            docs = (await gateway.get("/openapi.json")).json()
            if "/users/hop" in docs["paths"]:
                break
            await asyncio.sleep(0.05)
        assert "/users/hop" in docs["paths"]


# ----------------------------------------------------------------------------------------------
# Merged API docs


async def test_openapi_merges_the_upstream_documents(gateway: httpx2.AsyncClient) -> None:
    response = await gateway.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/health", "/ready"} <= set(paths)  # the gateway's own
    assert {"/users/hop", "/auth/.well-known/jwks.json"} <= set(paths)
    assert "/metrics" not in paths, "upstream root endpoints are not part of the public API"


async def test_docs_page_loads_only_its_own_assets(gateway: httpx2.AsyncClient) -> None:
    page = await gateway.get("/docs")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert referenced, page.text
    assert "<script>" not in page.text, "no inline script: the CSP would refuse it"
    for url in referenced:
        assert url.startswith("/docs/assets/"), url
        asset = await gateway.get(url)
        assert asset.status_code == 200, url
        assert int(asset.headers["content-length"]) > 0
        assert asset.headers["cache-control"] == "public, max-age=3600", url
    init = await gateway.get("/docs/assets/swagger-ui-init.js")
    assert "/openapi.json" in init.text
    assert init.headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize("name", ["redoc.standalone.js", "..%2Fdocs_ui.py", "nothing.js"])
async def test_only_listed_docs_assets_are_served(gateway: httpx2.AsyncClient, name: str) -> None:
    assert_problem(await gateway.get(f"/docs/assets/{name}"), 404)


async def test_head_of_the_gateways_own_routes(gateway: httpx2.AsyncClient) -> None:
    for path in ("/docs", "/docs/assets/swagger-ui.css", "/openapi.json", "/health"):
        get = await gateway.get(path)
        head = await gateway.head(path)
        assert head.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"], path


def test_head_over_a_real_server_ends_cleanly_and_keeps_the_connection(
    gateway_app: AppFactory,
) -> None:
    # The ASGI server reads HEAD from its own scope to expect no body: a Content-Length
    # without the body must not look like a truncated response to it.
    with ServerThread(gateway_app()) as server, httpx2.Client(base_url=server.url) as client:
        for _ in range(3):
            response = client.head("/docs")
            assert response.status_code == 200
            assert int(response.headers["content-length"]) > 0
        assert client.get("/health").status_code == 200


async def test_405_on_the_gateways_own_routes_lists_allowed_methods(
    gateway: httpx2.AsyncClient,
) -> None:
    response = await gateway.post("/docs")

    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD"


def test_operation_ids_stay_unique_across_upstreams() -> None:
    table = RouteTable(
        upstreams=(Upstream("auth", "/auth", "http://a"), Upstream("users", "/users", "http://u"))
    )

    def document(prefix: str) -> dict[str, Any]:
        return {"paths": {f"{prefix}/x": {"get": {"operationId": "read"}}}}

    merged = merge_documents(
        {"openapi": "3.1.0", "paths": {"/ready": {"get": {"operationId": "ready"}}}},
        table,
        {"auth": document("/auth"), "users": document("/users")},
    )

    assert merged["paths"]["/auth/x"]["get"]["operationId"] == "read"
    assert merged["paths"]["/users/x"]["get"]["operationId"] == "users_read"


def test_conflicting_schema_names_are_kept_apart() -> None:
    table = RouteTable(
        upstreams=(Upstream("auth", "/auth", "http://a"), Upstream("users", "/users", "http://u"))
    )

    def document(prefix: str, field: str) -> dict[str, Any]:
        return {
            "paths": {
                f"{prefix}/x": {"get": {"schema": {"$ref": "#/components/schemas/Thing"}}},
                "/health": {},
            },
            "components": {"schemas": {"Thing": {"properties": {field: {}}}}},
        }

    merged = merge_documents(
        {"openapi": "3.1.0", "paths": {"/ready": {}}},
        table,
        {"auth": document("/auth", "a"), "users": document("/users", "u")},
    )
    assert set(merged["paths"]) == {"/ready", "/auth/x", "/users/x"}
    schemas = merged["components"]["schemas"]
    assert schemas["Thing"] == {"properties": {"a": {}}}
    assert schemas["users_Thing"] == {"properties": {"u": {}}}
    users_ref = merged["paths"]["/users/x"]["get"]["schema"]["$ref"]
    assert users_ref == "#/components/schemas/users_Thing"


async def test_metrics_are_served_on_their_own_port_only(
    make_gateway: GatewayFactory, issuer: TestIssuer
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with make_gateway(metrics_port=port, metrics_host="127.0.0.1") as gateway:
        await gateway.get("/users/me", headers=bearer(issuer.mint()))
        assert_problem(await gateway.get("/metrics"), 404)
        async with httpx2.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        assert "http_requests_total" in scraped.text
        assert 'route="/users/{path:path}"' in scraped.text
    with pytest.raises(httpx2.ConnectError):
        async with httpx2.AsyncClient() as scraper:
            await scraper.get(f"http://127.0.0.1:{port}/metrics")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            aiohttp.ClientConnectorError(
                connection_key=ConnectionKey(
                    host="127.0.0.1",
                    port=1,
                    is_ssl=False,
                    ssl=True,
                    proxy=None,
                    proxy_auth=None,
                    proxy_headers_hash=None,
                ),
                os_error=ConnectionRefusedError(111, "refused"),
            ),
            Failure.CONNECT,
        ),
        (aiohttp.ConnectionTimeoutError(), Failure.CONNECT_TIMEOUT),
        (aiohttp.SocketTimeoutError(), Failure.TIMEOUT),
        (TimeoutError(), Failure.TIMEOUT),
        (aiohttp.ServerDisconnectedError(), Failure.BROKEN),
        (aiohttp.ClientPayloadError(), Failure.BROKEN),
        (httpx2.ConnectError("refused"), Failure.CONNECT),
        (httpx2.ConnectTimeout("slow"), Failure.CONNECT_TIMEOUT),
        (httpx2.ReadTimeout("slow"), Failure.TIMEOUT),
        (httpx2.PoolTimeout("busy"), Failure.POOL_TIMEOUT),
        (httpx2.ReadError("reset"), Failure.BROKEN),
    ],
)
def test_transport_errors_are_classified_by_what_happened(
    error: Exception, expected: Failure
) -> None:
    classify = httpx2_failure if isinstance(error, httpx2.TransportError) else aiohttp_failure
    assert classify(error) is expected


def test_every_endpoint_and_dependency_is_async(gateway_app: AppFactory) -> None:
    assert sync_dependencies(gateway_app()) == []
