"""Manage trainers' accounts from the command line (the gateway's database).

    python -m scripts.users add NAME --role admin|trainer  # password: $AFINADOR_PASSWORD/prompt
    python -m scripts.users deactivate NAME
    python -m scripts.users activate NAME
    python -m scripts.users password NAME                  # reset: $AFINADOR_PASSWORD or prompted
    python -m scripts.users token NAME                     # prints a new API token (shown once)
    python -m scripts.users revoke-tokens NAME
    python -m scripts.users list

It reads the same settings as the gateway (``GATEWAY_DATABASE_URL`` or ``DATA_DIR``),
applies the gateway's migrations first, and records each change in the audit log
as done by ``cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path

from services.common.db import create_engine, run_migrations, session_factory
from services.common.errors import AfinadorError
from services.gateway import accounts
from services.gateway.settings import GatewaySettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "gateway" / "migrations"
ACTOR = "cli"


def _password(confirm: bool = True) -> str:
    given = os.environ.get("AFINADOR_PASSWORD")
    if given:
        return given
    first = getpass.getpass("Contraseña / password: ")
    if confirm and getpass.getpass("Repítela / repeat it: ") != first:
        raise SystemExit("Las contraseñas no coinciden / the passwords differ.")
    return first


async def _run(args: argparse.Namespace, settings: GatewaySettings) -> str:
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            if args.command == "add":
                user = await accounts.add_user(session, args.name, _password(), args.role,
                                               actor=ACTOR)
                return f"added {user.username} ({args.role})"
            if args.command in ("activate", "deactivate"):
                user = await accounts.set_active(session, args.name, args.command == "activate",
                                                 actor=ACTOR)
                return f"{args.command}d {user.username}"
            if args.command == "password":
                user = await accounts.set_password(session, args.name, _password(), actor=ACTOR)
                return f"password changed for {user.username}; their sessions ended"
            if args.command == "token":
                return await accounts.issue_token(session, args.name, actor=ACTOR)
            if args.command == "revoke-tokens":
                count = await accounts.revoke_tokens(session, args.name, actor=ACTOR)
                return f"revoked {count} token(s)"
            users = await accounts.list_users(session)
            return "\n".join(
                f"{u.username}\t{accounts.effective_role(u, settings)}\t"
                f"{'active' if u.active else 'deactivated'}" for u in users) or "(no users)"
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.users",
                                     description="Manage trainers' accounts.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a user (password from $AFINADOR_PASSWORD or asked)")
    add.add_argument("name")
    add.add_argument("--role", choices=accounts.ROLES, default="trainer")
    for name, text in (("deactivate", "end a user's access (ratings are kept)"),
                       ("activate", "give a deactivated user access again"),
                       ("password", "set a new password (ends the user's sessions)"),
                       ("token", "print a new API token for programmatic clients"),
                       ("revoke-tokens", "revoke every API token of a user")):
        commands.add_parser(name, help=text).add_argument("name")
    commands.add_parser("list", help="list users")
    args = parser.parse_args(argv)
    settings = GatewaySettings()
    run_migrations(MIGRATIONS, settings.database_url, "alembic_version_gateway")
    try:
        print(asyncio.run(_run(args, settings)))
    except AfinadorError as error:
        print(f"error: {error.message_en} / {error.message_es}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
