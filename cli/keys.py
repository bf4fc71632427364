"""`llm-gateway keys create|list|update|revoke`: a tenant's named, scoped API keys (issue 15), run straight on
the database like `llm-gateway tenants`, answering what the admin API would (`--json` prints its JSON). A
change drops the tenant's cached snapshots from Redis, so it applies to the next request of every API process.
`cli.main` registers the parsers (cli/key_args.py) and calls `run`."""

import argparse

from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from cli.key_args import KEY_OPTIONS
from cli.tables import render_pairs, render_table
from cli.tenants import Action, Outcome, run_action
from shared.api_keys import KeyCreate, KeyScopes, create_key, list_keys, render_key, revoke_key, update_key
from shared.audit import CLI_ACTOR
from shared.config import Settings
from shared.errors import InvalidRequest
from shared.tenants import validation_problems

__all__ = ["run"]

NUMBERS: dict[str, type[int] | type[float]] = {"rate_limit": int, "tpm_limit": int, "max_concurrent": int,
                                               "budget_usd": float}
LISTS = frozenset({"allowed_models", "allowed_endpoints"})
BOOLEANS = {"yes": True, "true": True, "no": False, "false": False}
LIST_COLUMNS = ("id", "name", "prefix", "allowed_models", "allowed_endpoints", "manage", "expires_at",
                "last_used_at")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `keys` command; exit codes as `llm-gateway tenants`."""
    return run_action(ACTIONS[args.action], args, settings)


def _value(field: str, text: str) -> object:
    if field == "manage":
        if text.strip().lower() not in BOOLEANS:
            raise InvalidRequest(f"--manage must be yes or no, not {text!r}")
        return BOOLEANS[text.strip().lower()]
    if text.strip().lower() == "none" and field != "budget_period":
        return None
    if field in LISTS:
        return [item.strip() for item in text.split(",") if item.strip()]
    kind = NUMBERS.get(field)
    if kind is None:
        return text
    try:
        return kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise InvalidRequest(f"{KEY_OPTIONS[field][0]} must be {expected} or 'none', not {text!r}") from None


def _given(args: argparse.Namespace) -> dict[str, object]:
    return {field: _value(field, getattr(args, field)) for field in KEY_OPTIONS if hasattr(args, field)}


def _validated(model: type[KeyScopes], values: dict[str, object]) -> KeyScopes:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid key: {validation_problems(exc)}") from exc


def _flat(value: object) -> object:
    """A list (models, endpoints) as one comma-separated cell."""
    return ",".join(str(item) for item in value) if isinstance(value, list) else value


def _key_text(data: dict[str, object]) -> str:
    return render_pairs([(name, _flat(value)) for name, value in data.items() if name != "object"])


async def _create(args: argparse.Namespace, session: AsyncSession) -> Outcome:
    params = _validated(KeyCreate, {"name": args.name, **_given(args)})
    if not isinstance(params, KeyCreate):  # validated with KeyCreate just above: a bug if not
        raise TypeError("key parameters were not validated as KeyCreate")
    key, plain = await create_key(session, args.tenant_id, params, actor=CLI_ACTOR)
    data = {**render_key(key), "api_key": plain}
    return Outcome(f"{_key_text(data)}\n\nThe API key is shown only this once: store it now.", data)


async def _list(args: argparse.Namespace, session: AsyncSession) -> Outcome:
    keys = [render_key(key) for key in await list_keys(session, args.tenant_id, include_revoked=args.all)]
    rows = [[_flat(item[column]) for column in LIST_COLUMNS] for item in keys]
    return Outcome(render_table(LIST_COLUMNS, rows) if rows else "no keys", {"object": "list", "data": keys})


async def _update(args: argparse.Namespace, session: AsyncSession) -> Outcome:
    changes = _validated(KeyScopes, _given(args))
    if not changes.model_fields_set:
        options = ", ".join(option for option, _, _ in KEY_OPTIONS.values())
        raise InvalidRequest(f"nothing to update: give at least one of {options}")
    key = await update_key(session, args.tenant_id, args.key_id, changes, actor=CLI_ACTOR)
    budget_changed = bool(changes.model_fields_set & {"budget_usd", "budget_period"})
    return Outcome(_key_text(render_key(key)), render_key(key), changed=key.tenant_id, budget_changed=budget_changed,
                   budget_key_id=key.id)


async def _revoke(args: argparse.Namespace, session: AsyncSession) -> Outcome:
    key = await revoke_key(session, args.tenant_id, args.key_id, actor=CLI_ACTOR)
    return Outcome(_key_text(render_key(key)), render_key(key), changed=key.tenant_id)


ACTIONS: dict[str, Action] = {"create": _create, "list": _list, "update": _update, "revoke": _revoke}
