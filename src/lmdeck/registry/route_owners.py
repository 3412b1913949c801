"""Who owns each live route, and which routes follow a model alias.

A route's owner (:class:`lmdeck.policy.ownership.RouteOwner`) is, in order:

1. the team its configuration names (``team:``, a team id or name);
2. for a route every target of which follows registry aliases (``registry:support-bot@production``),
   the team owning those models, when they all belong to one team (a model not registered yet
   counts as the default team's);
3. otherwise the admins (a configured route that names no team).

Blocking (team names are looked up in the store): call from a worker thread::

    owners = RouteOwners(db, table, live)
    owners.owner("support")                       # RouteOwner("support", "team_1", basis=...)
    owners.following("support-bot", {"production"})   # ["support"]
"""

from __future__ import annotations

from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.policy.ownership import RouteOwner
from lmdeck.registry.live import LiveRegistry
from lmdeck.registry.route_overlay import RouteTable
from lmdeck.registry.snapshot import ModelRef, RegistrySnapshot
from lmdeck.settings import RouteConfig

REGISTRY_PROVIDER = "registry"


def followed_models(config: RouteConfig) -> list[ModelRef] | None:
    """The registry aliases a route's targets follow, or None when a target is not a registry alias."""
    refs = []
    for target in config.targets:
        if target.provider != REGISTRY_PROVIDER:
            return None
        try:
            refs.append(ModelRef.parse(target.model))
        except ValueError:
            return None
    return refs


class RouteOwners:
    """Route ownership over the live routes (the config file's and those applied)."""

    def __init__(self, db: Database, table: RouteTable, live: LiveRegistry) -> None:
        self.db = db
        self.table = table
        self.live = live

    def _team_id(self, team: str) -> str:
        with self.db.engine.connect() as conn:
            row = conn.execute(text("SELECT id FROM teams WHERE id = :v OR name = :v"), {"v": team}).first()
        return str(row[0]) if row is not None else team

    def owner_of(self, config: RouteConfig, snapshot: RegistrySnapshot) -> RouteOwner:
        if config.team is not None:
            return RouteOwner(config.name, self._team_id(config.team), basis="its configuration names the team")
        refs = followed_models(config)
        if refs is None:
            return RouteOwner(config.name, admins_only=True, basis="a configured route that names no team")
        # A model nobody registered yet counts as the default team's, where the config file's things live.
        teams = {getattr(snapshot.owner("model", ref.name), "team_id", None) for ref in refs}
        names = ", ".join(sorted({ref.name for ref in refs}))
        if len(teams) != 1:
            return RouteOwner(config.name, admins_only=True, basis=f"it follows models of several teams: {names}")
        return RouteOwner(config.name, next(iter(teams)), basis=f"it follows registry model {names}")

    def owner(self, route: str, snapshot: RegistrySnapshot | None = None) -> RouteOwner | None:
        """The owner of the live route ``route``, or None when no such route exists."""
        snap = snapshot or self.live.snapshot
        config = self.table.config(route, snap)
        return self.owner_of(config, snap) if config is not None else None

    def following(
        self, model: str, labels: set[str] | None, snapshot: RegistrySnapshot | None = None
    ) -> list[RouteOwner]:
        """The owners of the routes with a target following ``model@label`` for a label in ``labels``
        (any alias or version when ``labels`` is None)."""
        snap = snapshot or self.live.snapshot
        found = []
        for name in self.table.names(snap):
            config = self.table.config(name, snap)
            if config is None:
                continue
            for target in config.targets:
                if target.provider != REGISTRY_PROVIDER:
                    continue
                try:
                    ref = ModelRef.parse(target.model)
                except ValueError:
                    continue
                pointer = ref.label if ref.label is not None else str(ref.version)
                if ref.name == model and (labels is None or pointer in labels):
                    found.append(self.owner_of(config, snap))
                    break
        return found
