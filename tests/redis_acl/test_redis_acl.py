"""The Redis accounts of the stack (scripts/lib/redis-acl.sh), on a real Redis.

The accounts come from the Compose stack's own generator (scripts/dev-secrets.sh), so this is
the redis.conf that `make up` runs. Each service's Redis work succeeds under its own account,
the users account can neither read nor change auth's keys (issue 11, item 9), and the
gateway's account can only read the event streams.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError
from testcontainers.community.redis import RedisContainer

from gatehouse_auth.main import create_app
from gatehouse_auth.settings import AuthSettings
from gatehouse_auth.throttling import LoginThrottle, SlidingWindows
from gatehouse_common.availability import AvailabilityGate
from gatehouse_common.events import (
    AUTH_STREAM,
    USERS_STREAM,
    Event,
    EventPublisher,
    LoginsRevoked,
    decode,
    event_type_of,
    run_in_background,
)
from gatehouse_common.events.entries import range_entries
from gatehouse_common.revocation import RevocationFeed, RevocationSet
from gatehouse_testing.app import started
from gatehouse_testing.containers import REDIS_IMAGE
from gatehouse_testing.plugin import Eventually
from gatehouse_users.profiles.cache import ProfileCache
from gatehouse_users.profiles.schemas import ProfileRead
from services.users.tests.support import settings_for
from tests.in_process_auth import auth_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_IN_CONTAINER = "/usr/local/etc/redis/redis.conf"
AUTH_PREFIX = str(AuthSettings.model_fields["redis_key_prefix"].default)
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Accounts:
    """Redis URLs of the stack's accounts, pointed at the test container."""

    admin: str
    auth: str
    auth_events: str
    users: str
    gateway: str


def _env_value(path: Path, name: str) -> str:
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == name:
            return value
    raise AssertionError(f"{name} not in {path.name}")


@pytest.fixture(scope="module")
def stack_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    secrets_dir = tmp_path_factory.mktemp("secrets")
    # A key set is there already, so the generator writes only the datastore secrets and
    # needs no auth image.
    (secrets_dir / "signing-keys.json").write_text("{}")
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "dev-secrets.sh")],
        env={**os.environ, "GATEHOUSE_SECRETS_DIR": str(secrets_dir)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return secrets_dir


@pytest.fixture(scope="module")
def accounts(stack_secrets: Path) -> Iterator[Accounts]:
    redis_conf = stack_secrets / "redis.conf"
    admin_password = next(
        line.removeprefix("requirepass ")
        for line in redis_conf.read_text().splitlines()
        if line.startswith("requirepass ")
    )
    container = (
        RedisContainer(image=REDIS_IMAGE, password=admin_password)
        .with_command(f"redis-server {CONFIG_IN_CONTAINER}")
        .with_volume_mapping(str(redis_conf), CONFIG_IN_CONTAINER, "ro")
    )
    with container:
        address = f"{container.get_container_host_ip()}:{container.get_exposed_port(6379)}"

        def local(url: str) -> str:
            return url.replace("@redis:6379", f"@{address}")

        yield Accounts(
            admin=f"redis://default:{admin_password}@{address}/0",
            auth=local(_env_value(stack_secrets / "auth.env", "AUTH_REDIS_URL")),
            auth_events=local(_env_value(stack_secrets / "auth.env", "AUTH_EVENTS_REDIS_URL")),
            users=local(_env_value(stack_secrets / "users.env", "USERS_REDIS_URL")),
            gateway=local(_env_value(stack_secrets / "gateway.env", "GATEWAY_EVENTS_REDIS_URL")),
        )


@asynccontextmanager
async def _connected(urls: dict[str, str]) -> AsyncIterator[dict[str, Redis]]:
    """A client per URL, under the same names; closed on exit."""
    opened = {name: Redis.from_url(url) for name, url in urls.items()}
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.aclose()


@pytest.fixture
async def as_account(accounts: Accounts) -> AsyncIterator[dict[str, Redis]]:
    """A client under each account, on the database its URL names."""
    urls = {
        "admin": accounts.admin,
        "auth": accounts.auth,
        "users": accounts.users,
        "gateway": accounts.gateway,
    }
    async with _connected(urls) as opened:
        yield opened


async def test_the_auth_service_works_under_its_account(
    accounts: Accounts,
    mongo_url: str,
    tmp_path: Path,
    as_account: dict[str, Redis],
    eventually: Eventually,
) -> None:
    admin = as_account["admin"]
    settings = auth_settings(
        tmp_path,
        mongo_url,
        redis_url=accounts.auth,
        events_redis_url=accounts.auth_events,
        login_max_failures_per_email=2,
    )
    app = create_app(settings)
    email = f"acl-{uuid.uuid4().hex[:8]}@example.com"
    async with (
        started(app) as running_app,
        running_app.client("http://auth.test", client_address=("203.0.113.9", 50000)) as client,
    ):

        async def login(password: str) -> int:
            response = await client.post(
                "/auth/token",
                data={"grant_type": "password", "username": email, "password": password},
            )
            return response.status_code

        registered = await client.post(
            "/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201
        assert await login("wrong password!") == 400
        assert await login(PASSWORD) == 200  # clears the email's failure, frees its place
        assert [await login("wrong password!") for _ in range(3)] == [400, 400, 429]
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["events"] == "ok"

        async def throttles_watched() -> bool:
            # The connection watch (docs/auth.md) is blocked in its BLPOP, not refused.
            return any(
                client["name"] == "auth-throttles-watch"
                and client["user"] == "auth"
                and client["cmd"] == "blpop"
                for client in await admin.client_list()
            )

        await eventually(throttles_watched)
        # The outbox relay publishes under AUTH_EVENTS_REDIS_URL, auth's own account too.
        user_id = registered.json()["id"]
        deadline = asyncio.get_running_loop().time() + 5
        while not any(
            event_type_of(fields) == "account.registered"
            and str(decode(fields).payload.user_id) == user_id
            for _, fields in range_entries(await admin.xrange(AUTH_STREAM, "-", "+"))
        ):
            assert asyncio.get_running_loop().time() < deadline, "account.registered not published"
            await asyncio.sleep(0.1)

    # The registration throttle fails open, so its counter is checked in Redis itself.
    registrations = f"{AUTH_PREFIX}registrations:address:203.0.113.9"
    assert await admin.zcard(registrations) == 1
    # The streams (and auth's consumer group) go, so the role tests start from none.
    await admin.delete(AUTH_STREAM, USERS_STREAM)


async def test_the_users_cache_works_under_its_account(accounts: Accounts) -> None:
    errors_before = _cache_errors()
    # No PostgreSQL here: the settings need a URL, the cache never uses it.
    settings = settings_for("postgresql+asyncpg://unused@127.0.0.1/unused", accounts.users)
    cache = ProfileCache.from_settings(settings)
    cache.start(accounts.users)
    now = datetime.now(UTC)
    profile = ProfileRead(
        id=uuid.uuid4(), email=None, display_name="A", bio="", created_at=now, updated_at=now
    )
    try:
        miss = await cache.read(profile.id)
        await cache.fill(miss, profile)
        hit = await cache.read(profile.id)
        await cache.invalidate(profile.id)
        after_write = await cache.read(profile.id)
    finally:
        await cache.close()

    assert miss.profile is None
    assert miss.version is not None  # Redis answered: a failure leaves no version
    assert hit.profile == profile
    assert after_write.profile is None
    assert after_write.version not in {None, miss.version}
    assert _cache_errors() == errors_before


def _cache_errors() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "users_cache_errors"
        for sample in metric.samples
        if sample.name == "users_cache_errors_total"
    )


@pytest.fixture
async def clients(accounts: Accounts) -> AsyncIterator[dict[str, Redis]]:
    """Each service's client of the event channel: its own account, and one database for all
    (streams live in a database, and users' cache URL names database 1)."""
    urls = {"auth": _database(accounts.auth, 0), "users": _database(accounts.users, 0)}
    async with _connected(urls) as opened:
        yield opened


def _database(url: str, number: int) -> str:
    return f"{url.rsplit('/', 1)[0]}/{number}"


OTHER = {"auth": "users", "users": "auth"}


@pytest.mark.parametrize("service", ["auth", "users"])
async def test_each_service_plays_its_roles_on_the_event_channel(
    service: str, clients: dict[str, Redis]
) -> None:
    """The commands of docs/events.md, role by role: producer, consumer group, revocation feed."""
    client, producer = clients[service], clients[OTHER[service]]
    own, consumed = f"events:{service}", f"events:{OTHER[service]}"
    fields: dict[Any, Any] = {"type": "test", "run": uuid.uuid4().hex}

    # Producer: its own stream.
    await client.xadd(own, fields, maxlen=1000, approximate=True)
    # Consumer group (named after the service) on the other's stream, with an entry there.
    await client.xgroup_create(consumed, service, id="$", mkstream=True)
    await producer.xadd(consumed, fields)
    await producer.xadd(consumed, fields)
    read = await client.xreadgroup(service, "c1", {consumed: ">"}, count=10)
    assert isinstance(read, list)  # RESP2: [[stream, [(id, fields), ...]], ...]
    [(_, [(first, _), (second, _)])] = read
    await client.xautoclaim(consumed, service, "c2", min_idle_time=0)
    assert await client.xpending_range(consumed, service, first, first, 1)
    seen = f"events:seen:{service}:{uuid.uuid4()}"
    assert await client.set(seen, "c2", nx=True, px=60_000)
    assert await client.get(seen) == b"c2"
    async with client.pipeline(transaction=True) as pipe:
        pipe.set(seen, "handled", ex=3600)
        pipe.xack(consumed, service, first)
        await pipe.execute()
    async with client.pipeline(transaction=True) as pipe:  # dead-lettering
        pipe.xadd(f"{consumed}:dead", fields, maxlen=1000, approximate=True)
        pipe.xack(consumed, service, second)
        await pipe.execute()
    assert await client.delete(seen) == 1
    assert await client.xinfo_groups(consumed)
    # Revocation feed: both streams, read only, in one XREAD.
    assert await client.xrange(own, "-", "+", count=10)
    assert await client.xread({own: "0", consumed: "0"}, count=10)


@pytest.mark.parametrize("service", ["auth", "users"])
async def test_no_service_writes_the_other_services_events(
    service: str, clients: dict[str, Redis]
) -> None:
    client, other = clients[service], OTHER[service]
    await clients[other].xadd(f"events:{other}", {"type": "test"})

    forbidden: list[Any] = [
        client.xadd(f"events:{other}", {"type": "forged"}),  # publishing as the other service
        client.xadd(f"events:{service}:dead", {"type": "forged"}),  # the other group's dead letters
        client.xtrim(f"events:{other}", maxlen=0),
        client.delete(f"events:{other}"),
        client.xgroup_destroy(f"events:{other}", service),
        client.set(f"events:seen:{other}:{uuid.uuid4()}", "handled"),  # the other group's record
        client.xreadgroup(service, "c1", {f"events:{service}": ">"}),  # a group on its own stream
    ]
    for command in forbidden:
        with pytest.raises(NoPermissionError):
            await command


async def test_users_cannot_read_or_change_auth_keys(as_account: dict[str, Redis]) -> None:
    as_auth, as_users = as_account["auth"], as_account["users"]
    throttle = LoginThrottle(
        SlidingWindows(
            as_auth, window_seconds=900, gate=AvailabilityGate("redis", 1.0, probe=as_auth.ping)
        ),
        prefix=AUTH_PREFIX,
        max_failures_per_email=5,
        max_failures_per_address=20,
    )
    address = f"test-{uuid.uuid4().hex}"
    async with throttle.attempt("victim@example.com", address) as attempt:
        attempt.failed()
    key = f"{AUTH_PREFIX}login-failures:address:{address}"

    forbidden: list[Any] = [
        as_users.get(key),
        as_users.zrange(key, 0, -1),
        as_users.zcard(key),
        as_users.delete(key),
        as_users.unlink(key),
        as_users.set(key, "x"),
        as_users.zrem(key, "x"),
        as_users.expire(key, 1),
        as_users.eval("return redis.call('DEL', KEYS[1])", 1, key),
        as_users.keys("*"),
        as_users.scan(0),
        as_users.flushdb(),
        as_users.flushall(),
        as_users.config_get("*"),
        as_users.acl_list(),
    ]
    for command in forbidden:
        with pytest.raises(NoPermissionError):
            await command
    assert await as_account["admin"].zcard(key) == 1


async def test_auth_cannot_read_or_change_users_keys(as_account: dict[str, Redis]) -> None:
    as_auth, as_users = as_account["auth"], as_account["users"]
    key = f"users:profile-entry:{uuid.uuid4()}"
    await as_users.set(key, "cached")

    for command in (as_auth.get(key), as_auth.delete(key), as_auth.set(key, "x")):
        with pytest.raises(NoPermissionError):
            await command
    assert await as_users.get(key) == b"cached"


async def test_the_gateway_feeds_revocations_under_its_account(
    as_account: dict[str, Redis], clients: dict[str, Redis]
) -> None:
    """The revocation feed as the gateway runs it: replay with XRANGE, follow with XREAD."""
    as_gateway = as_account["gateway"]
    user_id = uuid.uuid4()
    replayed, followed = str(uuid.uuid4()), str(uuid.uuid4())

    def revoked(session_id: str) -> Event[LoginsRevoked]:
        payload = LoginsRevoked(user_id=user_id, session_ids=(session_id,), reason="sign_out")
        return Event.of(payload, producer="auth")

    auth_events = EventPublisher(clients["auth"], stream=AUTH_STREAM)
    await auth_events.publish(revoked(replayed))
    revocations = RevocationSet(retention_seconds=900)
    feed = RevocationFeed(as_gateway, revocations, block_seconds=0.2)
    async with run_in_background(feed):
        assert await feed.wait_caught_up(timeout_seconds=10)
        assert revocations.is_revoked(str(user_id), replayed, issued_at=time.time())
        await auth_events.publish(revoked(followed))
        # The set has no change notification: polled, with a deadline.
        async with asyncio.timeout(10):
            while not revocations.is_revoked(str(user_id), followed, issued_at=time.time()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    assert await as_gateway.ping()


async def test_the_gateway_can_only_read_the_event_streams(
    as_account: dict[str, Redis], clients: dict[str, Redis]
) -> None:
    as_gateway, admin = as_account["gateway"], as_account["admin"]
    auth_key = f"{AUTH_PREFIX}login-failures:address:{uuid.uuid4().hex}"
    await admin.zadd(auth_key, {"x": 1})
    users_key = f"users:profile-entry:{uuid.uuid4()}"
    await as_account["users"].set(users_key, "cached")
    await clients["auth"].xadd(AUTH_STREAM, {"type": "test"})

    forbidden: list[Any] = [
        *(as_gateway.xadd(stream, {"type": "forged"}) for stream in (AUTH_STREAM, USERS_STREAM)),
        as_gateway.xadd(f"{AUTH_STREAM}:dead", {"type": "forged"}),
        as_gateway.xtrim(AUTH_STREAM, maxlen=0),
        as_gateway.delete(AUTH_STREAM),
        as_gateway.xgroup_create(AUTH_STREAM, "gateway", id="0"),
        as_gateway.xreadgroup("users", "c1", {AUTH_STREAM: ">"}),
        as_gateway.set(f"events:seen:users:{uuid.uuid4()}", "handled"),
        as_gateway.zcard(auth_key),
        as_gateway.delete(auth_key),
        as_gateway.get(users_key),
        as_gateway.set(users_key, "x"),
        as_gateway.keys("*"),
        as_gateway.flushdb(),
        as_gateway.config_get("*"),
    ]
    for command in forbidden:
        with pytest.raises(NoPermissionError):
            await command
    assert await as_gateway.xrange(AUTH_STREAM, "-", "+", count=1)
    assert await admin.zcard(auth_key) == 1
