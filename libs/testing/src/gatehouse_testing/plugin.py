"""pytest plugin (entry point ``gatehouse``): fixtures every test suite of the repo shares.

Containers are session-scoped and started only when a test asks for them.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from redis.asyncio import Redis
from testcontainers.community.mongodb import MongoDbContainer
from testcontainers.community.postgres import PostgresContainer
from testcontainers.community.redis import RedisContainer

from gatehouse_testing import containers
from gatehouse_testing.issuer import TestIssuer
from gatehouse_testing.mail import MailCatcher


@pytest.fixture(scope="session")
def postgres_container() -> Iterator[PostgresContainer]:
    with containers.postgres() as container:
        yield container


@pytest.fixture(scope="session")
def postgres_url(postgres_container: PostgresContainer) -> str:
    """A ``postgresql+asyncpg://`` URL of the session's PostgreSQL."""
    url: str = postgres_container.get_connection_url()
    return url


@pytest.fixture(scope="session")
def redis_container() -> Iterator[RedisContainer]:
    with containers.redis() as container:
        yield container


@pytest.fixture(scope="session")
def redis_url(redis_container: RedisContainer) -> str:
    return containers.redis_url(redis_container)


@pytest.fixture
async def events_redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the session's Redis, to publish events and read the streams as a test."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def mongo_container() -> Iterator[MongoDbContainer]:
    with containers.mongo() as container:
        yield container


@pytest.fixture(scope="session")
def mongo_url(mongo_container: MongoDbContainer) -> str:
    url: str = mongo_container.get_connection_url()
    return url


# A test's own datastore, for a test that stops, kills or pauses it: on a fixed host port, so
# that the service's URL still points at it after a restart.


@pytest.fixture
def dedicated_postgres() -> Iterator[PostgresContainer]:
    with containers.postgres(fixed_port=True) as container:
        yield container


@pytest.fixture
def dedicated_redis() -> Iterator[RedisContainer]:
    with containers.redis(fixed_port=True) as container:
        yield container


@pytest.fixture
def dedicated_mongo() -> Iterator[MongoDbContainer]:
    with containers.mongo(fixed_port=True) as container:
        yield container


@pytest.fixture(scope="session")
def maildev() -> Iterator[MailCatcher]:
    """MailDev for the session; tests tell their emails apart by recipient."""
    with containers.maildev() as container:
        yield MailCatcher(container)


@pytest.fixture
def issuer() -> TestIssuer:
    return TestIssuer()


Condition = Callable[[], bool | Awaitable[bool]]
Eventually = Callable[[Condition], Awaitable[None]]


@pytest.fixture
def eventually() -> Eventually:
    """Poll a condition (plain or async) until it holds; fail after 10 s."""

    async def wait(condition: Condition) -> None:
        async with asyncio.timeout(10):
            while True:
                holds = condition()
                if inspect.isawaitable(holds):
                    holds = await holds
                if holds:
                    return
                await asyncio.sleep(0.05)

    return wait
