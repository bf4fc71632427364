"""The arguments of `llm-gateway tenants ...` and `llm-gateway usage`, apart from the code that runs them
(cli/tenants.py), so that building the command line imports nothing heavy."""

import argparse

__all__ = ["LIMIT_HELP", "MAX_DAYS", "NUMBERS", "OPTIONS", "PROG", "add_parsers"]

PROG = "llm-gateway"
MAX_DAYS = 366  # as the admin API's usage endpoint
# Command-line option of each TenantLimits field, and the type of the numeric ones ("none" clears them).
OPTIONS = {"rate_limit": "--rate-limit", "tpm_limit": "--tpm", "max_concurrent": "--max-concurrent",
           "budget_usd": "--budget-usd", "budget_period": "--budget-period", "weight": "--weight",
           "max_running": "--max-running", "allowed_models": "--allowed-models",
           "log_content_days": "--log-content-days", "name": "NAME"}
NUMBERS: dict[str, type[int] | type[float]] = {"rate_limit": int, "tpm_limit": int, "max_concurrent": int,
                                               "budget_usd": float, "weight": int, "max_running": int,
                                               "log_content_days": int}
LIMIT_HELP = (
    ("rate_limit", "N", "requests per minute"),
    ("tpm_limit", "N", "tokens per minute"),
    ("max_concurrent", "N", "requests in flight at once (>= 1)"),
    ("budget_usd", "USD", "spend cap per budget period"),
    ("budget_period", "PERIOD", "monthly, weekly, daily or none"),
    ("weight", "N", "share of workers among tenants with queued jobs (1-1000, default 1)"),
    ("max_running", "N", "jobs running at once; more wait in the queue (>= 1)"),
    ("allowed_models", "GLOBS", "comma-separated model names or globs the tenant may call ('none': any)"),
    ("log_content_days", "DAYS", "keep prompt and answer text this many days (1-365; default: never)"),
)


def add_parsers(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `tenants` (with its actions) and `usage` on the top-level subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON, as the admin API answers")
    tenants = sub.add_parser("tenants", help="create, list, read, update, disable and enable tenants, rotate keys")
    actions = tenants.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[common], help="create a tenant; prints its API key once")
    create.add_argument("name", metavar="NAME")
    _add_limit_options(create)
    actions.add_parser("list", parents=[common], help="list every tenant")
    update = actions.add_parser("update", parents=[common], help="change limits; 'none' removes a limit")
    update.add_argument("tenant_id", metavar="ID")
    _add_limit_options(update)
    for name, text in (("get", "show one tenant"), ("disable", "refuse the tenant's keys"),
                       ("enable", "accept the tenant's keys again"),
                       ("rotate-key", "replace the tenant's 'default' key and print the new one, once")):
        actions.add_parser(name, parents=[common], help=text).add_argument("tenant_id", metavar="ID")
    usage = sub.add_parser("usage", parents=[common], help="a tenant's usage: totals, breakdowns, groups")
    usage.add_argument("tenant_id", metavar="TENANT_ID")
    usage.add_argument("--days", type=int, default=30, help=f"look back this many days (1-{MAX_DAYS})")
    usage.add_argument("--group-by", metavar="DIMS",
                       help="day, model, provider, endpoint, status, key, user, tag:<key>; comma-separated")
    for name in ("day", "model", "provider", "endpoint", "status", "key", "user"):
        usage.add_argument(f"--{name}", metavar=name.upper(), help=f"only records of this {name}")
    usage.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                       help="only records with this tag (repeat for several)")
    usage.add_argument("--csv", action="store_true", help="print CSV (grouped by day without --group-by)")


def _add_limit_options(parser: argparse.ArgumentParser) -> None:
    # Strings, converted by `_option_value`, so a bad value gets our one-line error rather than argparse's usage.
    group = parser.add_argument_group("limits ('none' removes a numeric limit)")
    for field, metavar, text in LIMIT_HELP:
        group.add_argument(OPTIONS[field], dest=field, metavar=metavar, default=argparse.SUPPRESS, help=text)
