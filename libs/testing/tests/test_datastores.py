"""One round trip with each datastore the shared fixtures start."""

from __future__ import annotations

import uuid

from pymongo import AsyncMongoClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


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
