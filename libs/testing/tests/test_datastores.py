"""One round trip with each datastore (and the mail catcher) the shared fixtures start."""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from email.message import EmailMessage

from pymongo import AsyncMongoClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gatehouse_testing.mail import MailCatcher, token_in


async def test_postgres_round_trip(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+asyncpg://")
    engine = create_async_engine(postgres_url)
    try:
        async with engine.begin() as connection:
            value = (await connection.execute(text("select 40 + 2"))).scalar_one()
    finally:
        await engine.dispose()
    assert value == 42


async def test_redis_round_trip(redis_url: str) -> None:
    key = f"smoke:{uuid.uuid4().hex}"
    async with Redis.from_url(redis_url) as redis:
        await redis.set(key, "v", ex=60)
        assert await redis.get(key) == b"v"


async def test_mongo_round_trip(mongo_url: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    try:
        collection = client["smoke"]["items"]
        marker = uuid.uuid4().hex
        await collection.insert_one({"marker": marker, "qty": 3})
        found = await collection.find_one({"marker": marker})
    finally:
        await client.close()
    assert found is not None
    assert found["qty"] == 3


async def test_maildev_round_trip(maildev: MailCatcher) -> None:
    recipient = f"smoke-{uuid.uuid4().hex[:8]}@example.com"
    message = EmailMessage()
    message["From"] = "smoke@example.com"
    message["To"] = recipient
    message["Subject"] = "smoke"
    message.set_content("see https://gatehouse.example.com/verify-email#token=abc_DEF-123\n")
    # The standard library's client, off the event loop: the fixture is not tied to ours.
    await asyncio.to_thread(_send, maildev, message)

    (email,) = await maildev.wait_for_emails(recipient)
    assert email["subject"] == "smoke"
    assert token_in(email) == "abc_DEF-123"


def _send(maildev: MailCatcher, message: EmailMessage) -> None:
    with smtplib.SMTP(maildev.smtp_host, maildev.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)
