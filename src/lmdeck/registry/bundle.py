"""Release bundles: the exact configuration that served a request, named by one hash.

A request's bundle is its route's configuration (and that of its fallbacks),
the model version each ``registry:`` target resolved to, and the prompt
version it rendered. The hash is computed once per (route, prompt) for each
registry snapshot and cached on the snapshot, so stamping it costs a
dictionary lookup; a change to any part yields a new snapshot or route config,
hence a new hash. The bundle's content is written to ``registry_bundles`` in
the background the first time it is seen, so ``GET /api/registry/bundles/{hash}``
can show what any trace ran with::

    stamp = StampBundle(live, routes, bundles)
    StepDeclaration(stamp, "resolve", after=("prompt",))   # in RegistryRuntime.steps
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import anyio
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from lmdeck.db import Database
from lmdeck.pipeline.chain import Handler
from lmdeck.pipeline.context import RequestContext, Result, Streamed
from lmdeck.protocol import APIError
from lmdeck.registry.live import LiveRegistry
from lmdeck.registry.prompt_step import PROMPT, SNAPSHOT, PromptStamp
from lmdeck.registry.resolver import pinned, pinned_stream
from lmdeck.registry.snapshot import RegistrySnapshot
from lmdeck.registry.sql import digest, dumps, loads, now
from lmdeck.settings import RouteConfig

log = logging.getLogger(__name__)

REGISTRY_PROVIDER = "registry"


class RouteLookup(Protocol):
    def config(self, name: str, snapshot: RegistrySnapshot) -> RouteConfig | None: ...


def bundle_content(
    route_name: str, routes: RouteLookup, snapshot: RegistrySnapshot, prompt: tuple[str, int, str] | None
) -> dict[str, Any]:
    """Everything live for a request to ``route_name``: routes (with fallbacks), model versions, prompt."""
    route_configs: dict[str, Any] = {}
    models: dict[str, Any] = {}
    pending = [route_name]
    while pending:
        name = pending.pop()
        if name in route_configs:
            continue
        config = routes.config(name, snapshot)
        route_configs[name] = config.model_dump(mode="json", by_alias=True) if config else None
        if config is None:
            continue
        pending.extend(config.fallbacks)
        for target in config.targets:
            if target.provider != REGISTRY_PROVIDER or target.model in models:
                continue
            try:
                version = snapshot.model(target.model)
            except (APIError, ValueError):
                models[target.model] = None
            else:
                models[target.model] = {"name": version.name, "version": version.version, "digest": version.digest}
    prompt_part = {"name": prompt[0], "version": prompt[1], "digest": prompt[2]} if prompt else None
    return {"route": route_name, "routes": route_configs, "models": models, "prompt": prompt_part}


class BundleLog:
    """Keeps each bundle's content once, written off the event loop."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: set[asyncio.Task[None]] = set()

    def _write(self, bundle_hash: str, content: dict[str, Any]) -> None:
        try:
            with self.db.engine.begin() as conn:
                exists = conn.execute(
                    text("SELECT 1 FROM registry_bundles WHERE hash = :h"), {"h": bundle_hash}
                ).first()
                if exists is None:
                    conn.execute(
                        text("INSERT INTO registry_bundles (hash, content, first_seen) VALUES (:h, :c, :t)"),
                        {"h": bundle_hash, "c": dumps(content), "t": now()},
                    )
        except IntegrityError:
            pass  # another process wrote the same bundle first

    def remember(self, bundle_hash: str, content: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._remember(bundle_hash, content))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _remember(self, bundle_hash: str, content: dict[str, Any]) -> None:
        try:
            await anyio.to_thread.run_sync(self._write, bundle_hash, content)
        except Exception:
            log.exception("could not store bundle %s", bundle_hash)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def get(self, bundle_hash: str) -> dict[str, Any] | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(
                text("SELECT hash, content, first_seen FROM registry_bundles WHERE hash = :h"), {"h": bundle_hash}
            ).first()
        if row is None:
            return None
        return {"hash": row[0], "first_seen": float(row[2]), **loads(row[1])}


class StampBundle:
    """Stamps ``trace.bundle_hash`` and pins the request to the registry snapshot the hash describes."""

    name = "bundle"

    def __init__(self, live: LiveRegistry, routes: RouteLookup, log: BundleLog) -> None:
        self.live = live
        self.routes = routes
        self.log = log

    def hash_for(self, route_name: str, snapshot: RegistrySnapshot, prompt: PromptStamp | None) -> str | None:
        """The bundle hash of a request to ``route_name``; None when no such route exists (nothing
        served it, and a name a client made up is neither cached nor stored)."""
        key = (route_name, prompt)
        found = snapshot.bundles.get(key)
        if found is None:
            if self.routes.config(route_name, snapshot) is None:
                return None
            content = bundle_content(route_name, self.routes, snapshot, prompt)
            found = snapshot.bundles[key] = digest(content)
            self.log.remember(found, content)
        return found

    async def __call__(self, ctx: RequestContext, call_next: Handler) -> Result:
        snapshot = ctx.slots.get(SNAPSHOT) or self.live.snapshot
        ctx.trace.bundle_hash = self.hash_for(ctx.route_name, snapshot, ctx.slots.get(PROMPT))
        with pinned(snapshot):
            result = await call_next(ctx)
        if isinstance(result, Streamed):
            return Streamed(pinned_stream(snapshot, result.chunks), result.headers)
        return result
