"""``lmdeck apply``: sync routes, prompts, models, their aliases/labels and the guardrails of teams and keys.

The plan is computed and carried out in one transaction, so what is applied
is exactly what the plan showed; a second run with the same file finds
nothing to do. Route changes, teams' and keys' guardrail attachments and
moves of protected aliases/labels need the admin role; models and prompts are created for the caller's team, and changing
another team's (or moving a route's traffic without owning the route) is
refused before anything is applied; every move is in the move history and the
audit log::

    sync = ConfigSync(db, live, models, prompts, table, provider_names, audit, settings)
    result = await sync.apply(Declared.model_validate(doc), dry_run=True, prune=False, principal=admin)
    print(result["summary"])   # "no changes" the second time
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from sqlalchemy import Connection, text

from lmdeck.db import Database
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.ownership import Owner, check_add, owner_for_new
from lmdeck.protocol import APIError
from lmdeck.protocol.guardrails import GuardrailAttachment
from lmdeck.protocol.registry import ModelSpec, ModelVersionSpec, PromptSpec, PromptVersionSpec
from lmdeck.providers.egress import EgressPolicy
from lmdeck.registry.catalog import AuditTrail, Catalog, actor_of
from lmdeck.registry.labels import LATEST, LabelMove
from lmdeck.registry.live import LiveRegistry
from lmdeck.registry.model_registry import ModelRegistry
from lmdeck.registry.plan import (
    GUARDRAIL_SCOPES,
    Change,
    CurrentState,
    Declared,
    Plan,
    attachment_dump,
    compute_plan,
)
from lmdeck.registry.prompt_registry import PromptRegistry
from lmdeck.registry.route_overlay import RouteTable
from lmdeck.registry.route_owners import RouteOwners
from lmdeck.registry.snapshot import ModelRef
from lmdeck.registry.sql import bump_revision, dumps, loads, now
from lmdeck.registry.versions import Kind
from lmdeck.settings import RouteConfig, Settings


class ConfigSync:
    """Serving class of ``/api/registry/apply`` and ``/api/registry/routes``."""

    def __init__(
        self,
        db: Database,
        live: LiveRegistry,
        models: ModelRegistry,
        prompts: PromptRegistry,
        table: RouteTable,
        provider_names: Callable[[], list[str]],
        audit: AuditTrail | None,
        settings: Settings,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.db = db
        self.egress = egress
        self.live = live
        self.catalogs: dict[str, Catalog[Any]] = {"model": models, "prompt": prompts}
        self.models = models
        self.prompts = prompts
        self.table = table
        self.provider_names = provider_names
        self.audit = audit
        self.protected: dict[str, str] = dict(settings.registry.protected_labels)
        #: The guardrails an applied route may attach (the gateway's definitions).
        self.guardrail_names = frozenset(settings.guardrails.definitions)
        #: The teams' and keys' attachments of the gateway's config file (what an applied one replaces).
        self.file_guardrails: dict[str, dict[str, GuardrailAttachment]] = {
            "teams": dict(settings.guardrails.teams),
            "keys": dict(settings.guardrails.keys),
        }

    # -- validation ----------------------------------------------------------------------------

    def _check_uses(self, owner: str, attached: GuardrailAttachment | None, param: str) -> None:
        """Refuse an attachment using a guardrail the gateway does not define (400 naming it)."""
        defined = self.guardrail_names
        for use in [*attached.input, *attached.output] if attached is not None else []:
            if use.use not in defined:
                raise APIError(
                    400,
                    f"{owner}: no guardrail named {use.use!r} is defined on this gateway "
                    f"(defined: {', '.join(sorted(defined)) or 'none'}); add it to guardrails.definitions "
                    "in the gateway's config first",
                    param=param,
                )

    def _validate(self, declared: Declared, principal: Principal) -> None:
        known = set(self.provider_names())
        names = {r.name for r in declared.routes} | set(self.table.names(self.live.snapshot))
        for scope, subject in GUARDRAIL_SCOPES.items():
            attachments: dict[str, GuardrailAttachment] = getattr(declared.guardrails, scope)
            for name, attachment in attachments.items():
                self._check_uses(f"{subject.split('_')[0]} {name!r}", attachment, f"guardrails.{scope}.{name}")
        for n, route in enumerate(declared.routes):
            self._check_uses(f"route {route.name!r}", route.guardrails, "routes")
            for fallback in route.fallbacks:
                if fallback not in names:
                    raise APIError(
                        400, f"route {route.name!r} falls back to unknown route {fallback!r}", param="routes"
                    )
            for k, target in enumerate(route.targets):
                if target.base_url and self.egress is not None:
                    # Only admins change routes; the address rules still hold for them.
                    self.egress.check(target.base_url, f"routes.{n}.targets.{k}.base_url", trusted=True)
                if target.provider not in known:
                    raise APIError(
                        400,
                        f"route {route.name!r}: unknown provider {target.provider!r} (known: {', '.join(sorted(known))})",
                        param="routes",
                    )
                if target.provider == "registry":
                    try:
                        ModelRef.parse(target.model)
                    except ValueError as exc:
                        raise APIError(400, f"route {route.name!r}: {exc}", param="routes") from None
        for i, model in enumerate(declared.models):
            for j, mv in enumerate(model.versions):
                self.models.validate(mv)
                self.models.check_writer(mv, principal, field=f"models.{i}.versions.{j}")
        for prompt in declared.prompts:
            for pv in prompt.versions:
                self.prompts.validate(pv)

    # -- current state -------------------------------------------------------------------------

    def _current(self, conn: Connection) -> CurrentState:
        file_routes = {}
        for name in self.table.router.names():
            route = self.table.router.get(name)
            if route is not None:
                file_routes[name] = route.config
        applied = {
            str(name): RouteConfig.model_validate(loads(spec))
            for name, spec in conn.execute(text("SELECT name, spec FROM registry_routes")).all()
        }
        versions: dict[Any, dict[int, str]] = {}
        descriptions: dict[Any, str | None] = {}
        pointers: dict[Any, dict[str, int]] = {}
        for kind in ("model", "prompt"):
            for name, description in conn.execute(text(f"SELECT name, description FROM registry_{kind}s")).all():
                descriptions[(kind, str(name))] = description
            rows = conn.execute(text(f"SELECT name, version, digest FROM registry_{kind}_versions")).all()
            for name, number, content in rows:
                versions.setdefault((kind, str(name)), {})[int(number)] = str(content)
        for kind, name, label, number in conn.execute(text("SELECT kind, name, label, version FROM registry_labels")):
            pointers.setdefault((kind, str(name)), {})[str(label)] = int(number)
        guardrails: dict[str, dict[str, GuardrailAttachment]] = {scope: {} for scope in GUARDRAIL_SCOPES}
        for scope, name, spec in conn.execute(text("SELECT scope, name, spec FROM registry_guardrail_attachments")):
            guardrails.setdefault(str(scope), {})[str(name)] = GuardrailAttachment.model_validate(loads(spec))
        return CurrentState(
            file_routes,
            applied,
            versions,
            pointers,
            descriptions,
            file_guardrails=self.file_guardrails,
            applied_guardrails=guardrails,
        )

    # -- applying ------------------------------------------------------------------------------

    # -- permissions ---------------------------------------------------------------------------

    def _authorize(self, conn: Connection, plan: Plan, principal: Principal) -> None:
        """Refuse a plan touching models or prompts the caller may not change, or moving the traffic
        of routes it does not own (see :mod:`lmdeck.policy.ownership`)."""
        for change in plan.changes:
            if change.subject == "route" or change.subject in GUARDRAIL_SCOPES.values():
                continue  # route and guardrail attachment changes need the admin role (``needs_admin``)
            label: str | None = None
            if change.subject in ("alias", "label"):
                kind: Kind = "model" if change.subject == "alias" else "prompt"
                name, _, label = change.name.partition("@")
            elif change.subject.endswith("_version"):
                kind = "model" if change.subject == "model_version" else "prompt"
                name = change.name.rsplit(" v", 1)[0]
            else:
                kind = "model" if change.subject == "model" else "prompt"
                name = change.name
            catalog = self.catalogs[kind]
            what = catalog.what(name)
            existing = check_add(principal, catalog.versions.owners.get(conn, name), what)
            if existing is None:
                catalog.check_traffic(name, None, principal, f"registering {what}")
            elif label is not None:
                catalog.check_traffic(name, {label}, principal, f"moving {name}@{label}")
            elif change.subject.endswith("_version"):
                catalog.check_traffic(name, {LATEST}, principal, f"adding a version to {what}")

    def _execute(
        self, conn: Connection, change: Change, declared: Declared, actor: str, owner: Owner
    ) -> LabelMove | None:
        if change.subject == "route":
            if change.action == "delete":
                conn.execute(text("DELETE FROM registry_routes WHERE name = :n"), {"n": change.name})
            else:
                route = next(r for r in declared.routes if r.name == change.name)
                stored = dumps(route.model_dump(mode="json", by_alias=True))
                params = {"n": route.name, "s": stored, "t": now(), "a": actor}
                if conn.execute(text("SELECT 1 FROM registry_routes WHERE name = :n"), params).first():
                    conn.execute(
                        text("UPDATE registry_routes SET spec = :s, updated_at = :t, updated_by = :a WHERE name = :n"),
                        params,
                    )
                else:
                    conn.execute(
                        text(
                            "INSERT INTO registry_routes (name, spec, updated_at, updated_by) VALUES (:n, :s, :t, :a)"
                        ),
                        params,
                    )
            bump_revision(conn)
            return None
        if change.subject in GUARDRAIL_SCOPES.values():
            self._store_attachment(conn, change, declared, actor)
            return None
        if change.subject in ("model", "prompt"):
            spec = _spec(declared, change.subject, change.name)
            self.catalogs[change.subject].versions.ensure(conn, change.name, actor, spec.description, owner)
            return None
        if change.subject.endswith("_version"):
            of = change.subject.removesuffix("_version")
            name = change.name.rsplit(" v", 1)[0]
            declared_versions: list[ModelVersionSpec | PromptVersionSpec] = list(_spec(declared, of, name).versions)
            version = next(v for v in declared_versions if v.version == change.detail["version"])
            self.catalogs[of].versions.ensure(conn, name, actor, None, owner)
            self.catalogs[of].versions.add(conn, name, version, actor)
            return None
        kind: Kind = "model" if change.subject == "alias" else "prompt"
        name, _, label = change.name.partition("@")
        return self.catalogs[kind].labels.move_in(
            conn,
            kind,
            name,
            label,
            change.detail["to"],
            actor=actor,
            reason="lmdeck apply",
            action="apply" if change.action == "move" else "remove",
        )

    def _store_attachment(self, conn: Connection, change: Change, declared: Declared, actor: str) -> None:
        scope = next(s for s, subject in GUARDRAIL_SCOPES.items() if subject == change.subject)
        params = {"scope": scope, "n": change.name, "t": now(), "a": actor}
        conn.execute(text("DELETE FROM registry_guardrail_attachments WHERE scope = :scope AND name = :n"), params)
        if change.action != "delete":
            attachment: GuardrailAttachment = getattr(declared.guardrails, scope)[change.name]
            conn.execute(
                text(
                    "INSERT INTO registry_guardrail_attachments (scope, name, spec, updated_at, updated_by) "
                    "VALUES (:scope, :n, :s, :t, :a)"
                ),
                {**params, "s": dumps(attachment_dump(attachment))},
            )
        bump_revision(conn)

    def _apply(
        self, declared: Declared, dry_run: bool, prune: bool, principal: Principal, expected: str | None
    ) -> Plan:
        actor = actor_of(principal)
        with self.db.engine.begin() as conn:
            plan = compute_plan(declared, self._current(conn), protected=self.protected, prune=prune)
            if plan.conflicts:
                raise APIError(409, "the file cannot be applied: " + "; ".join(plan.conflicts), code="apply_conflict")
            if expected is not None and expected != plan.digest():
                raise APIError(
                    409,
                    "the registry changed since the plan was shown: run `lmdeck apply` again to see the new plan",
                    code="plan_changed",
                )
            self._authorize(conn, plan, principal)
            if dry_run or not plan.changes:
                return plan
            if plan.needs_admin and not principal.at_least("admin"):
                names = ", ".join(c.describe() for c in plan.needs_admin)
                raise APIError(403, f"these changes need the 'admin' role: {names}", code="forbidden")
            owner = owner_for_new(principal)
            moves = [self._execute(conn, change, declared, actor, owner) for change in plan.changes]
        for move in moves:
            if move is not None:
                self.catalogs[move.kind].record_move(move)
        if self.audit is not None:
            after: dict[str, Any] = {"changes": [c.describe() for c in plan.changes]}
            policy = [c.to_dict() for c in plan.changes if c.subject in GUARDRAIL_SCOPES.values()]
            if policy:
                after["guardrails"] = policy  # who is checked by what, before and after
            self.audit.append(actor, "config.applied", "registry", after=after)
        return plan

    async def apply(
        self,
        declared: Declared,
        *,
        dry_run: bool,
        prune: bool,
        principal: Principal,
        expected_plan: str | None = None,
    ) -> dict[str, Any]:
        """Plan (``dry_run``) or apply; ``expected_plan`` refuses to apply anything but the plan shown."""
        self._validate(declared, principal)
        plan = await anyio.to_thread.run_sync(self._apply, declared, dry_run, prune, principal, expected_plan)
        applied = bool(plan.changes) and not dry_run
        if applied:
            await self.live.refresh()
        return {
            "dry_run": dry_run,
            "applied": applied,
            "summary": plan.summary(),
            "plan_hash": plan.digest(),
            "changes": [c.to_dict() for c in plan.changes],
        }

    async def routes(self) -> list[dict[str, Any]]:
        """The live routes with their source and owner (who may move their traffic)."""
        snapshot = self.live.snapshot
        owners = RouteOwners(self.db, self.table, self.live)

        def read() -> list[dict[str, Any]]:
            out = []
            for name in self.table.names(snapshot):
                config = self.table.config(name, snapshot)
                if config is not None:
                    source = "applied" if name in snapshot.routes else "config"
                    owner = owners.owner_of(config, snapshot).to_dict()
                    out.append({"source": source, **config.model_dump(mode="json", by_alias=True), "owner": owner})
            return out

        return await anyio.to_thread.run_sync(read)


def _spec(declared: Declared, kind: str, name: str) -> ModelSpec | PromptSpec:
    specs: list[ModelSpec] | list[PromptSpec] = declared.models if kind == "model" else declared.prompts
    return next(s for s in specs if s.name == name)
