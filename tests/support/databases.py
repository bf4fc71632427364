"""A fresh PostgreSQL database for a group of end-to-end tests: each group (e2e, security, faults) owns one,
so a run of one group never drops another's data mid-test. Raises if PostgreSQL is down: runs fail, never skip."""

import asyncpg

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


async def recreate_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
