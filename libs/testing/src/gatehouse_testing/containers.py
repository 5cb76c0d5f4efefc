"""Session-wide datastores from testcontainers, images overridable like the Compose stack's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TypeVar

from testcontainers.community.mongodb import MongoDbContainer
from testcontainers.community.postgres import PostgresContainer
from testcontainers.community.redis import RedisContainer
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HttpWaitStrategy

from gatehouse_testing.network import free_port

POSTGRES_IMAGE = os.environ.get("POSTGRES_IMAGE", "postgres:16-alpine")
REDIS_IMAGE = os.environ.get("REDIS_IMAGE", "redis:7-alpine")
MONGO_IMAGE = os.environ.get("MONGO_IMAGE", "mongo:7")
MAILDEV_IMAGE = os.environ.get("MAILDEV_IMAGE", "maildev/maildev:2.2.1")
MAILDEV_SMTP_PORT = 1025
MAILDEV_WEB_PORT = 1080

Container = TypeVar("Container", bound=DockerContainer)


def postgres(*, fixed_port: bool = False) -> AbstractContextManager[PostgresContainer]:
    """PostgreSQL; ``fixed_port`` as for ``_started``."""
    container = PostgresContainer(image=POSTGRES_IMAGE, driver="asyncpg")
    return _started(container, container.port, fixed_port=fixed_port)


def redis(*, fixed_port: bool = False) -> AbstractContextManager[RedisContainer]:
    """Redis; ``fixed_port`` as for ``_started``."""
    container = RedisContainer(image=REDIS_IMAGE)
    return _started(container, container.port, fixed_port=fixed_port)


def mongo(*, fixed_port: bool = False) -> AbstractContextManager[MongoDbContainer]:
    """MongoDB; ``fixed_port`` as for ``_started``."""
    container = MongoDbContainer(image=MONGO_IMAGE)
    return _started(container, container.port, fixed_port=fixed_port)


@contextmanager
def _started(container: Container, port: int, *, fixed_port: bool) -> Iterator[Container]:
    """``container`` running; with ``fixed_port`` its ``port`` is published on a fixed free
    host port, so that a test can stop and start it (an outage) and find it at the same
    address again."""
    if fixed_port:
        container.with_bind_ports(port, free_port())
    with container:
        yield container


@contextmanager
def maildev() -> Iterator[DockerContainer]:
    """MailDev, the mail catcher of the Compose stack: SMTP on 1025, its REST API on 1080.

    Both ports are bound to fixed free host ports, so a test can stop and start the container
    (a mail server outage) and find it at the same address again.
    """
    container = (
        DockerContainer(MAILDEV_IMAGE)
        .with_bind_ports(MAILDEV_SMTP_PORT, free_port())
        .with_bind_ports(MAILDEV_WEB_PORT, free_port())
        .waiting_for(HttpWaitStrategy(MAILDEV_WEB_PORT, "/healthz").for_status_code(200))
    )
    with container:
        yield container


def redis_url(container: RedisContainer, db: int = 0) -> str:
    host = container.get_container_host_ip()
    port = container.get_exposed_port(container.port)
    return f"redis://{host}:{port}/{db}"
