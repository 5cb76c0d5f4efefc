"""One async engine per process, a session per request, and database failures as 503.

The engine's connections are in autocommit unless a session's transaction says otherwise:
request sessions run at READ COMMITTED (a BEGIN on first use, a COMMIT at the end), and a read
that stands alone (``RequestSession.outside_transaction``) runs on a connection without a
session: one round trip instead of three. The pool's pre-ping then is a single ``;`` rather
than BEGIN, ``;`` and ROLLBACK, which asyncpg's adapter wraps around a ping on a connection
that is not in autocommit: an uncached read went from six round trips to two
(docs/performance.md).

After PostgreSQL failed to answer, the gate (``gatehouse_common.availability``) answers 503 at
once instead of letting every request wait for its own connect or statement timeout, until
its probe (``select 1`` on a connection of its own, once an interval) finds PostgreSQL back.
A request waiting on PostgreSQL for ``db_stall_seconds`` has the gate run that probe, bounded
by ``db_stall_probe_seconds``: a frozen PostgreSQL is noticed well before the statement
timeout. Cache hits
never open a session, so they pass neither the gate nor PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, InvalidatePoolError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from gatehouse_common.availability import AvailabilityGate
from gatehouse_common.logging import get_logger
from gatehouse_common.problems import DependencyUnavailable
from gatehouse_users.metrics import DB_STATEMENTS_PER_REQUEST
from gatehouse_users.settings import UsersSettings

AfterCommit = Callable[[], Awaitable[None]]

_log = get_logger(__name__)
# Where a pooled connection's record keeps when it was last returned (``_ping_after_idle``).
_RETURNED_AT = "gatehouse_returned_at"
# Statements of the current request; a list so the engine event can count into it in place.
_statements: ContextVar[list[int] | None] = ContextVar("statements", default=None)


class StatementFailed(Exception):
    """A statement failed although the database is reachable: a bug, answered as a 500.

    Raised in place of SQLAlchemy's error, whose text carries the driver's message with its
    DETAIL (for a constraint violation, the whole failing row: what the user typed and their
    email), so that the error log names the failure, the SQLSTATE and the statement, but no
    value. The engine's ``hide_parameters`` keeps the bound parameters out as well.
    """

    @classmethod
    def replacing(cls, error: DBAPIError) -> StatementFailed:
        sqlstate = getattr(error.orig, "sqlstate", None)
        return cls(f"{type(error.orig).__name__} (SQLSTATE {sqlstate}) in: {error.statement}")


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


def opens_gate(error: BaseException) -> bool:
    """True for failures of PostgreSQL itself; a full pool is this process's own overload,
    answered 503 but no reason to refuse everyone."""
    return is_unavailable(error) and not isinstance(error, PoolTimeoutError)


def _connect_args(settings: UsersSettings) -> dict[str, Any]:
    server_settings = {"application_name": "gatehouse-users"}
    if settings.db_statement_timeout_ms is not None:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    return {
        "timeout": settings.db_connect_timeout_seconds,
        "command_timeout": settings.db_command_timeout_seconds,
        "server_settings": server_settings,
    }


def make_engine(settings: UsersSettings) -> AsyncEngine:
    connect_args = _connect_args(settings)
    url = settings.database_url.get_secret_value()
    # hide_parameters: SQLAlchemy's errors and statement logs never carry the bound values,
    # which are user input and emails.
    if settings.db_pool_class == "null":
        engine = create_async_engine(
            url,
            poolclass=NullPool,
            connect_args=connect_args,
            hide_parameters=True,
            isolation_level="AUTOCOMMIT",
        )
    else:
        engine = create_async_engine(
            url,
            hide_parameters=True,
            isolation_level="AUTOCOMMIT",
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
            pool_recycle=settings.db_pool_recycle_seconds,
            connect_args=connect_args,
        )
        _ping_after_idle(engine, settings.db_pool_ping_after_idle_seconds)
    event.listen(engine.sync_engine, "before_cursor_execute", _count_statement)
    return engine


def _ping_after_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """``pool_pre_ping`` for connections idle ``idle_seconds`` or more only.

    A connection is checked when a restart or a dropped network may have broken it unseen;
    one returned a moment ago by a request that used it is not (the pre-ping of every
    checkout was a second round trip per read). A failed ping does what ``pool_pre_ping``
    does: whatever broke this connection broke its elders too, so the pool replaces every
    connection older than now, and the checkout connects afresh.
    """
    dialect = engine.dialect

    def returned(_: Any, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, _: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < idle_seconds:
            return  # connected for this checkout, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise InvalidatePoolError from exc

    event.listen(engine.sync_engine, "checkin", returned)
    event.listen(engine.sync_engine, "checkout", checked_out)


def make_probe_engine(settings: UsersSettings) -> AsyncEngine:
    """One connection of the gate's own: requests holding every pooled connection cannot
    delay its ``select 1`` and make a healthy PostgreSQL look frozen. Pre-pinged, so a
    connection that a past restart of PostgreSQL broke is replaced instead of failing a
    stall check on a server that is fine now."""
    return create_async_engine(
        settings.database_url.get_secret_value(),
        hide_parameters=True,
        isolation_level="AUTOCOMMIT",
        pool_size=1,
        max_overflow=0,
        pool_pre_ping=True,
        connect_args=_connect_args(settings),
    )


def _count_statement(*_: object) -> None:
    counter = _statements.get()
    if counter is not None:
        counter[0] += 1


@dataclass(frozen=True, slots=True)
class Database:
    """The engine, the session factory and the gate of this process, made by ``open_database``."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    gate: AvailabilityGate
    probe_engine: AsyncEngine

    async def ping(self) -> None:
        """``select 1`` through the gate: while it is open, fails at once."""
        async with self.gate.passage(opens_gate):
            await _select_one(self.engine)


async def _connect_ahead(engine: AsyncEngine) -> None:
    """Open the probe's connection now rather than in a stall check: a connect under load
    (TCP, startup, SCRAM) can outlast the check's bound, which would then open the gate on a
    healthy PostgreSQL; the chaos run saw it once in each new process."""
    with contextlib.suppress(Exception):  # down at start: the first request finds out
        await _select_one(engine)


async def _select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        try:
            await connection.execute(text("select 1"))
        except BaseException:
            # Timed out or cancelled mid-statement, the connection's state is unknown: drop it
            # without a round trip (a frozen server would not answer one).
            await connection.invalidate()
            raise


@asynccontextmanager
async def open_database(settings: UsersSettings) -> AsyncIterator[Database]:
    """The database for a lifespan; connections open lazily, so PostgreSQL may be down."""
    engine = make_engine(settings)
    probe_engine = make_probe_engine(settings)
    try:
        async with AvailabilityGate(
            "postgres",
            settings.db_retry_interval_seconds,
            probe=lambda: _select_one(probe_engine),
            stall_seconds=settings.db_stall_seconds,
            stall_probe_seconds=settings.db_stall_probe_seconds,
        ) as gate:
            # expire_on_commit=False: rows stay readable after the commit that ends each request.
            sessions = async_sessionmaker(
                engine.execution_options(isolation_level="READ COMMITTED"), expire_on_commit=False
            )
            connecting = asyncio.create_task(_connect_ahead(probe_engine), name="connect probe")
            try:
                yield Database(engine, sessions, gate, probe_engine)
            finally:
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connecting
    finally:
        await probe_engine.dispose()
        await engine.dispose()


class RequestSession:
    """The database side of one request: its session, opened on first use, and what runs after
    its commit.

    Opened lazily because a cache hit never touches PostgreSQL, and building, committing and
    closing an unused ``AsyncSession`` was a measurable share of a cached read's CPU
    (docs/performance.md).
    """

    __slots__ = ("_admitted", "_after_commit", "_database", "_on_open", "_session")

    def __init__(self, database: Database, on_open: Callable[[], None]) -> None:
        self._database = database
        self._on_open = on_open
        self._admitted = False
        self._session: AsyncSession | None = None
        self._after_commit: list[AfterCommit] = []

    def _admit(self) -> None:
        """``DependencyUnavailable`` at once while the gate is open; else the request's use of
        PostgreSQL is watched from now on."""
        if not self._admitted:
            self._database.gate.admit()
            self._on_open()
            self._admitted = True

    @property
    def session(self) -> AsyncSession:
        """The request's session; ``DependencyUnavailable`` at once while the gate is open."""
        if self._session is None:
            self._admit()
            self._session = self._database.sessions()
        return self._session

    @asynccontextmanager
    async def outside_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read that stands alone: in autocommit (no BEGIN and COMMIT
        around it), and without an ORM session, whose building, connection handling, commit
        and close cost more CPU than the read itself (docs/performance.md, the uncached read).
        Inside a transaction the request already began, the read joins that.

        Only for a single statement whose answer needs no lock and no consistency with
        another read. The connection goes back to the pool on leaving; after a failure or a
        cancellation it is dropped, as its state is unknown (and a frozen server would not
        answer a reset).
        """
        if self._session is not None and self._session.in_transaction():
            yield await self._session.connection()
            return
        self._admit()
        # The engine's own connections are in autocommit (``make_engine``).
        async with self._database.engine.connect() as connection:
            try:
                yield connection
            except BaseException:
                await connection.invalidate()
                raise

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

    async def discard(self) -> None:
        """Drop the connection without a word to the server, which rolls back on its own: after
        a cancellation the connection's state is unknown, and a frozen server would make a
        rollback wait for a timeout."""
        self._after_commit.clear()
        if self._session is not None:
            await self._session.invalidate()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@asynccontextmanager
async def request_session(database: Database, route: str) -> AsyncIterator[RequestSession]:
    """A request's session (opened on first use): commit on success, roll back on error, 503
    if the DB is down; ``route`` labels the statement count of the request."""
    statements = [0]
    _statements.set(statements)  # each request runs in its own context: no reset needed
    gate = database.gate
    try:
        # Watched from the session's opening: a request in flight when another one finds
        # PostgreSQL gone gets its 503 then, not after its own timeouts.
        async with gate.watch() as watch_from_here:
            session = RequestSession(database, on_open=watch_from_here)
            try:
                yield session
                await session.commit()
            except BaseException as exc:
                unavailable = isinstance(exc, Exception) and is_unavailable(exc)
                if unavailable or not isinstance(exc, Exception):
                    # Down, frozen or cancelled (the gate's watch included): a rollback would
                    # wait on the server for nothing. The gate opens first.
                    retry_after = gate.failed() if unavailable and opens_gate(exc) else 1.0
                    await session.discard()
                else:
                    await session.rollback()
                if unavailable:
                    # A warning without traceback: an outage is expected, not a bug.
                    _log.warning("database_unavailable", error=type(exc).__name__)
                    raise DependencyUnavailable(
                        "postgres", retry_after_seconds=retry_after
                    ) from exc
                if isinstance(exc, DBAPIError):
                    # from None: the original, with the values in its text, is not chained.
                    raise StatementFailed.replacing(exc).with_traceback(exc.__traceback__) from None
                raise
            finally:
                await session.close()
        await session.run_after_commit()
    finally:
        DB_STATEMENTS_PER_REQUEST.labels(route).observe(statements[0])
