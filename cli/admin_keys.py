"""`llm-gateway admin-keys ...`: admin credentials managed straight on the database, answering what the admin
API would (`--json` prints its JSON). Each change is audited with the actor `cli` (an operator with database
access), in the same transaction. `cli.main` registers the parsers (cli/admin_key_args.py) and calls `run`."""

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel.ext.asyncio.session import AsyncSession

from cli.tables import render_pairs, render_table
from shared.admin_keys import create_admin_key, get_admin_key, list_admin_keys, render_admin_key, revoke_admin_key
from shared.audit import CLI_ACTOR, record_admin_action
from shared.config import Settings
from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import run_migrations
from shared.errors import GatewayError

__all__ = ["run"]

COLUMNS = ("id", "name", "role", "key_prefix", "created_at")

Result = tuple[str, object]
Action = Callable[[argparse.Namespace, AsyncSession], Awaitable[Result]]


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `admin-keys` command; 0 on success, else 2 with a one-line error."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        if settings.resolved_database_url.startswith("sqlite"):
            run_migrations(settings.resolved_database_url)
        text, data = asyncio.run(_execute(ACTIONS[args.action], args, settings))
    except GatewayError as error:
        return _fail(error.message)
    except (SQLAlchemyError, OSError) as error:
        return _fail(f"database unavailable: {type(error).__name__}")
    print(json.dumps(data, indent=2) if args.json else text)
    return 0


async def _execute(action: Action, args: argparse.Namespace, settings: Settings) -> Result:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_session_factory(engine)() as session:
            return await action(args, session)
    finally:
        await engine.dispose()


async def _create(args: argparse.Namespace, session: AsyncSession) -> Result:
    row, plain = await create_admin_key(session, args.name, args.role)
    await record_admin_action(session, actor=CLI_ACTOR, action="admin_key.created", target_type="admin_key",
                              target_id=row.id, before=None, after=render_admin_key(row))
    await session.commit()
    data = {**render_admin_key(row), "api_key": plain}
    text = render_pairs([(k, v) for k, v in data.items() if k != "object"])
    return f"{text}\n\nThe admin key is shown only this once: store it now.", data


async def _list(args: argparse.Namespace, session: AsyncSession) -> Result:
    rows = [render_admin_key(row) for row in await list_admin_keys(session)]
    text = render_table(COLUMNS, [[item[c] for c in COLUMNS] for item in rows]) if rows else "no admin keys"
    return text, {"object": "list", "data": rows}


async def _delete(args: argparse.Namespace, session: AsyncSession) -> Result:
    before = render_admin_key(await get_admin_key(session, args.key_id))
    await revoke_admin_key(session, args.key_id)
    await record_admin_action(session, actor=CLI_ACTOR, action="admin_key.deleted", target_type="admin_key",
                              target_id=args.key_id, before=before, after=None)
    await session.commit()
    return f"admin key {args.key_id} deleted", {"id": args.key_id, "object": "admin_key", "deleted": True}


ACTIONS: dict[str, Action] = {"create": _create, "list": _list, "delete": _delete}


def _fail(message: str) -> int:
    print(f"llm-gateway: {message}", file=sys.stderr)
    return 2
