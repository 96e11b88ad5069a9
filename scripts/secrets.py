"""Write random secrets for `docker compose` into `.env` (ignored by git).

    python -m scripts.secrets            # creates .env; refuses to overwrite one
    python -m scripts.secrets --force    # replaces it (signs everyone out, new DB password
                                         # only takes effect on a fresh database volume)

It sets SERVICE_TOKEN, GATEWAY_SESSION_SECRET, POSTGRES_PASSWORD, MINIO_ROOT_PASSWORD
and a first admin (AFINADOR_ADMIN_USER / AFINADOR_ADMIN_PASSWORD, used only when the
gateway's database has no users yet), and prints the admin's password once.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from services.common.settings import REPO_ROOT


def generate(admin_user: str = "admin") -> dict[str, str]:
    return {
        "SERVICE_TOKEN": secrets.token_hex(32),
        "GATEWAY_SESSION_SECRET": secrets.token_hex(32),
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "MINIO_ROOT_PASSWORD": secrets.token_hex(16),
        "AFINADOR_ADMIN_USER": admin_user,
        "AFINADOR_ADMIN_PASSWORD": secrets.token_urlsafe(12),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write random secrets into .env for compose.")
    parser.add_argument("--path", type=Path, default=REPO_ROOT / ".env")
    parser.add_argument("--admin", default="admin", help="name of the first admin")
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    args = parser.parse_args(argv)
    if args.path.exists() and not args.force:
        print(f"{args.path} already exists; use --force to replace it.", file=sys.stderr)
        return 1
    values = generate(args.admin)
    args.path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    args.path.chmod(0o600)
    print(f"wrote {args.path}. First admin: {values['AFINADOR_ADMIN_USER']} / "
          f"{values['AFINADOR_ADMIN_PASSWORD']} (change it on /admin/users after signing in).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
