"""A fresh PostgreSQL database for a group of end-to-end tests: each group (e2e, security, faults) owns one,
so a run of one group never drops another's data mid-test; and the usage records the tests read back from it.
Raises if PostgreSQL is down: runs fail, never skip."""

import asyncio

import asyncpg

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


async def recreate_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()


async def tenant_usage_rows(database: str, tenant_id: str, count: int) -> list[asyncpg.Record]:
    """The tenant's usage records in `database`, oldest first, once the writer has flushed `count` of them
    (what there is after about 10 s otherwise, for the test to report)."""
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}")
    try:
        query = "SELECT * FROM usage_record WHERE tenant_id = $1 ORDER BY created_at"
        for _ in range(100):
            rows = await conn.fetch(query, tenant_id)
            if len(rows) >= count:
                return list(rows)
            await asyncio.sleep(0.1)
        return list(await conn.fetch(query, tenant_id))
    finally:
        await conn.close()
