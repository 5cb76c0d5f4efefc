"""One async engine per process, a session per request, and database failures as 503."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from fastapi import Request
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from gatehouse_common.logging import get_logger
from gatehouse_common.metrics import route_template
from gatehouse_common.problems import ServiceUnavailable
from gatehouse_users.metrics import DB_STATEMENTS_PER_REQUEST
from gatehouse_users.settings import UsersSettings

AfterCommit = Callable[[], Awaitable[None]]

_log = get_logger(__name__)
# Statements of the current request; a list so the engine event can count into it in place.
_statements: ContextVar[list[int] | None] = ContextVar("statements", default=None)


class DatabaseUnavailable(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__("The profile database is unavailable; try again shortly.")


def is_unavailable(error: BaseException) -> bool:
    """True for failures that mean "PostgreSQL cannot be reached", as opposed to bugs.

    Covers a full pool (``pool_timeout`` passed), refused or timed-out connects, connections
    dropped mid-request, and statements cancelled by a timeout.
    """
    if isinstance(error, PoolTimeoutError | OperationalError | InterfaceError | OSError):
        return True
    if isinstance(error, TimeoutError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def make_engine(settings: UsersSettings) -> AsyncEngine:
    server_settings = {"application_name": "gatehouse-users"}
    if settings.db_statement_timeout_ms is not None:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_seconds,
        "command_timeout": settings.db_command_timeout_seconds,
        "server_settings": server_settings,
    }
    url = settings.database_url.get_secret_value()
    if settings.db_pool_class == "null":
        engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args)
    else:
        engine = create_async_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
            pool_recycle=settings.db_pool_recycle_seconds,
            pool_pre_ping=settings.db_pool_pre_ping,
            connect_args=connect_args,
        )
    event.listen(engine.sync_engine, "before_cursor_execute", _count_statement)
    return engine


def _count_statement(*_: object) -> None:
    counter = _statements.get()
    if counter is not None:
        counter[0] += 1


class Database:
    """Holds the engine the lifespan makes, so dependencies and readiness can find it."""

    def __init__(self, settings: UsersSettings) -> None:
        self._settings = settings
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    def start(self) -> None:
        self._engine = make_engine(self._settings)
        # expire_on_commit=False: rows stay readable after the commit that ends each request.
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
        self._engine = self._sessions = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the database is used outside the app's lifespan")
        return self._engine

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        if self._sessions is None:
            raise RuntimeError("the database is used outside the app's lifespan")
        return self._sessions

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("select 1"))


class RequestSession:
    """The database side of one request: its session, opened on first use, and what runs after
    its commit.

    Opened lazily because a cache hit never touches PostgreSQL: building, committing and
    closing an unused ``AsyncSession`` cost a cached read about 0.2 ms of its ~2.8 ms of CPU.
    """

    __slots__ = ("_after_commit", "_session", "_sessions")

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None
        self._after_commit: list[AfterCommit] = []

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._sessions()
        return self._session

    def after_commit(self, action: AfterCommit) -> None:
        """Run ``action`` once this request's transaction has committed, before the response.

        Cache invalidation and cache fills go here: done earlier, a reader could cache a row
        that is then rolled back, or miss a write that is not yet visible.
        """
        self._after_commit.append(action)

    async def commit(self) -> None:
        if self._session is not None:
            await self._session.commit()

    async def run_after_commit(self) -> None:
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            await action()

    async def rollback(self) -> None:
        self._after_commit.clear()
        if self._session is None:
            return
        try:
            await self._session.rollback()
        except (DBAPIError, OSError, TimeoutError) as exc:
            # The connection is already gone; closing the session releases what is left.
            _log.info("rollback_failed", error=type(exc).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def database_session(request: Request) -> AsyncIterator[RequestSession]:
    """The request's session (opened on first use): commit on success, roll back on error, 503
    if the DB is down.

    Use with ``Depends(..., scope="function")`` so the commit (and what runs after it)
    happens before the response is sent, not after.
    """
    database: Database = request.app.state.database
    statements = [0]
    _statements.set(statements)  # each request runs in its own context: no reset needed
    request_session = RequestSession(database.sessions)
    try:
        try:
            yield request_session
            await request_session.commit()
        except BaseException as exc:
            await request_session.rollback()
            if isinstance(exc, Exception) and is_unavailable(exc):
                _log.warning("database_unavailable", error=type(exc).__name__)
                raise DatabaseUnavailable from exc
            raise
        finally:
            await request_session.close()
        await request_session.run_after_commit()
    finally:
        DB_STATEMENTS_PER_REQUEST.labels(route_template(request.scope)).observe(statements[0])
