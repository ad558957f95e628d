"""Bring the read-model schema to the newest Alembic revision (`python -m adapters.migrations`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from adapters.settings import Settings

_ROOT = Path(__file__).resolve().parents[1]


def migrate(database_url: str, schema: str | None = None) -> None:
    config = Config(str(_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = schema
    command.upgrade(config, "head")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schema", help="PostgreSQL schema to migrate (default: public)")
    args = parser.parse_args()
    migrate(Settings.from_env().database_url, schema=args.schema)
    print(f"read model migrated{' in schema ' + args.schema if args.schema else ''}")
