"""The arguments of `llm-gateway admin-keys ...`, apart from the code that runs them (cli/admin_keys.py), so
that building the command line imports nothing heavy."""

import argparse

__all__ = ["add_parsers"]


def add_parsers(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `admin-keys` (create, list, delete) on the top-level subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON, as the admin API answers")
    keys = sub.add_parser("admin-keys", help="create, list and delete admin API keys (roles admin, viewer)")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[common], help="issue an admin key; prints it once")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--role", choices=("admin", "viewer"), default="viewer",
                        help="admin: reads and writes; viewer (default): reads only")
    actions.add_parser("list", parents=[common], help="list active admin keys")
    actions.add_parser("delete", parents=[common], help="revoke an admin key").add_argument("key_id", metavar="ID")
