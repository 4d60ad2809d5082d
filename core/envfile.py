"""Write a development ``.env`` with freshly generated secrets, if none exists.

Run as ``python -m core.envfile`` (the Makefile does). It never overwrites an existing
file, so a second run keeps the secrets that encrypt existing data.
"""

import argparse
import base64
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def new_encryption_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def render_env() -> str:
    return (
        "# Written by `make run` with fresh random secrets. Keep this file private.\n"
        "# Every variable is documented in .env.example.\n"
        "DEBUG=true\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"ENCRYPTION_KEYS={new_encryption_key()}\n"
        f"SERVER_SECRET_KEY={secrets.token_urlsafe(32)}\n"
    )


def ensure_env_file(path: Path) -> bool:
    """Create ``path`` with new secrets unless it exists. Return True when written."""
    if path.exists():
        return False
    path.write_text(render_env())
    path.chmod(0o600)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", type=Path, default=ROOT / ".env")
    parser.add_argument("--new-key", action="store_true", help="print a new ENCRYPTION_KEYS entry")
    args = parser.parse_args(argv)
    if args.new_key:
        print(new_encryption_key())
        return 0
    if ensure_env_file(args.path):
        print(f"Wrote {args.path} with new secrets.")
    else:
        print(f"Using existing {args.path}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
