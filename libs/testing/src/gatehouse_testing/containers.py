"""Session-wide datastores from testcontainers, images overridable like the Compose stack's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from testcontainers.community.mongodb import MongoDbContainer
from testcontainers.community.postgres import PostgresContainer
from testcontainers.community.redis import RedisContainer

POSTGRES_IMAGE = os.environ.get("POSTGRES_IMAGE", "postgres:16-alpine")
REDIS_IMAGE = os.environ.get("REDIS_IMAGE", "redis:7-alpine")
MONGO_IMAGE = os.environ.get("MONGO_IMAGE", "mongo:7")


@contextmanager
def postgres() -> Iterator[PostgresContainer]:
    with PostgresContainer(image=POSTGRES_IMAGE, driver="asyncpg") as container:
        yield container


@contextmanager
def redis() -> Iterator[RedisContainer]:
    with RedisContainer(image=REDIS_IMAGE) as container:
        yield container


@contextmanager
def mongo() -> Iterator[MongoDbContainer]:
    with MongoDbContainer(image=MONGO_IMAGE) as container:
        yield container


def redis_url(container: RedisContainer, db: int = 0) -> str:
    host = container.get_container_host_ip()
    port = container.get_exposed_port(container.port)
    return f"redis://{host}:{port}/{db}"
