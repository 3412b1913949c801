"""The store: one SQL database (SQLite by default, PostgreSQL by URL) and its named migrations."""

from lmdeck.db.database import Database
from lmdeck.db.migrations import Migrations, migrations

__all__ = ["Database", "Migrations", "migrations"]
