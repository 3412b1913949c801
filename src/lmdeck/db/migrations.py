"""Named, ordered migrations, recorded in the ``lmdeck_migrations`` table.

Each layer that owns tables registers its migrations with the decorator; the
name's numeric prefix orders them across layers and a migration runs once::

    @migrations("0001_traces")
    def create_traces(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE traces (...)"))

Modules holding migrations are listed in :data:`MIGRATION_MODULES` so that the
full set is known before any database is opened.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, text

MigrationFn = Callable[[Connection], None]

#: Modules that register migrations when imported.
MIGRATION_MODULES: list[str] = [
    "lmdeck.db.claim_migrations",
    "lmdeck.tracing.migrations",
    "lmdeck.policy.migrations",
    "lmdeck.registry.migrations",
    "lmdeck.evaluation.migrations",
    "lmdeck.evaluation.annotation.migrations",
    "lmdeck.delivery.migrations",
    "lmdeck.delivery.shadow.migrations",
    "lmdeck.monitoring.migrations",
    "lmdeck.delivery.flags.migrations",
    "lmdeck.gateway.ingress.responses.migrations",
    "lmdeck.gateway.batches.migrations",
    "lmdeck.finetune.flywheel.migrations",
    "lmdeck.finetune.jobs.migrations",
]


@dataclass(frozen=True)
class Migration:
    name: str
    fn: MigrationFn


class Migrations:
    """A set of named migrations, applied in name order."""

    def __init__(self) -> None:
        self._by_name: dict[str, Migration] = {}

    def __call__(self, name: str) -> Callable[[MigrationFn], MigrationFn]:
        def decorator(fn: MigrationFn) -> MigrationFn:
            if name in self._by_name and self._by_name[name].fn is not fn:
                raise ValueError(f"migration {name!r} is registered twice")
            self._by_name[name] = Migration(name, fn)
            return fn

        return decorator

    def ordered(self) -> list[Migration]:
        return [self._by_name[n] for n in sorted(self._by_name)]

    def apply(self, conn: Connection) -> list[str]:
        """Run every migration not yet recorded; return the names applied."""
        conn.execute(
            text("CREATE TABLE IF NOT EXISTS lmdeck_migrations (name VARCHAR(200) PRIMARY KEY, applied_at FLOAT)")
        )
        done = {row[0] for row in conn.execute(text("SELECT name FROM lmdeck_migrations"))}
        applied = []
        for migration in self.ordered():
            if migration.name in done:
                continue
            migration.fn(conn)
            conn.execute(
                text("INSERT INTO lmdeck_migrations (name, applied_at) VALUES (:n, :t)"),
                {"n": migration.name, "t": time.time()},
            )
            applied.append(migration.name)
        return applied


migrations = Migrations()


def load_migration_modules() -> None:
    for module in MIGRATION_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
