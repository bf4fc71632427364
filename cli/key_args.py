"""The arguments of `llm-gateway keys ...` (a tenant's named, scoped API keys; issue 15), apart from the code
that runs them (cli/keys.py), so that building the command line imports nothing heavy."""

import argparse

__all__ = ["KEY_OPTIONS", "add_key_parsers"]

# Command-line option of each KeyScopes field; values are converted by cli/keys.py ('none' clears one).
KEY_OPTIONS = {
    "expires_at": ("--expires-at", "TIME", "ISO 8601 time with a zone (e.g. 2027-01-01T00:00:00Z) the key stops at"),
    "allowed_models": ("--models", "GLOBS", "comma-separated model names or globs the key may call"),
    "allowed_endpoints": ("--endpoints", "LIST", "comma-separated endpoints: chat, messages, responses, "
                          "embeddings, completions, count_tokens, jobs, models"),
    "rate_limit": ("--rate-limit", "N", "the key's own requests per minute"),
    "tpm_limit": ("--tpm", "N", "the key's own tokens per minute"),
    "max_concurrent": ("--max-concurrent", "N", "the key's own requests in flight (>= 1)"),
    "budget_usd": ("--budget-usd", "USD", "the key's own spend cap per budget period"),
    "budget_period": ("--budget-period", "PERIOD", "monthly, weekly, daily or none"),
    "manage": ("--manage", "yes|no", "whether the key may manage its own tenant's keys in the console"),
}


def add_key_parsers(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `keys` and its actions on the top-level subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON, as the admin API answers")
    keys = sub.add_parser("keys", help="issue, list, update and revoke a tenant's named API keys")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[common], help="issue a named key; prints it once")
    create.add_argument("tenant_id", metavar="TENANT_ID")
    create.add_argument("name", metavar="NAME")
    _add_scope_options(create)
    listing = actions.add_parser("list", parents=[common], help="list a tenant's active keys")
    listing.add_argument("tenant_id", metavar="TENANT_ID")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    update = actions.add_parser("update", parents=[common], help="change a key's scopes; 'none' removes one")
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a key (401 from the next request on)")
    for parser in (update, revoke):
        parser.add_argument("tenant_id", metavar="TENANT_ID")
        parser.add_argument("key_id", metavar="KEY_ID")
    _add_scope_options(update)


def _add_scope_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scopes ('none' removes one)")
    for field, (option, metavar, text) in KEY_OPTIONS.items():
        group.add_argument(option, dest=field, metavar=metavar, default=argparse.SUPPRESS, help=text)
