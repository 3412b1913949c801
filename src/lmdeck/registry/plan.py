"""What ``lmdeck apply`` would change: a plan computed from the declared state and the registry's.

The plan lists each change (a route created or updated, a version added, an
alias or label moved, a team's or key's guardrails attached) and refuses declarations that cannot be honoured
(a stored version whose content differs: versions are immutable). An empty
plan is what makes ``apply`` idempotent::

    plan = compute_plan(declared, current)
    for change in plan.changes:
        print(change.describe())
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmdeck.protocol.guardrails import GuardrailAttachment
from lmdeck.protocol.registry import ModelSpec, ModelVersionSpec, PromptSpec, PromptVersionSpec
from lmdeck.registry.labels import POINTER_WORD
from lmdeck.registry.sql import digest, spec_digest
from lmdeck.registry.versions import Kind
from lmdeck.settings import RouteConfig

Action = Literal["create", "update", "delete", "move", "remove"]
_SYMBOL = {"create": "+", "update": "~", "delete": "-", "move": "→", "remove": "-"}


#: The scopes of guardrail attachments ``apply`` syncs (keys of the ``guardrails:`` block) and their plan subject.
GUARDRAIL_SCOPES: dict[str, str] = {"teams": "team_guardrails", "keys": "key_guardrails"}


class DeclaredGuardrails(BaseModel):
    """The guardrail attachments ``apply`` syncs: per team (id or name) and per key (id or name).

    Definitions and the data policy are the gateway's own configuration and are not applied.
    """

    model_config = ConfigDict(extra="forbid")

    teams: dict[str, GuardrailAttachment] = Field(default_factory=dict)
    keys: dict[str, GuardrailAttachment] = Field(default_factory=dict)


class Declared(BaseModel):
    """The part of an ``lmdeck.yaml`` that ``apply`` syncs."""

    model_config = ConfigDict(extra="forbid")

    routes: list[RouteConfig] = Field(default_factory=list)
    models: list[ModelSpec] = Field(default_factory=list)
    prompts: list[PromptSpec] = Field(default_factory=list)
    guardrails: DeclaredGuardrails = Field(default_factory=DeclaredGuardrails)


@dataclass(frozen=True)
class Change:
    """One line of a plan."""

    subject: str  # route, model, prompt, model_version, prompt_version, alias, label, team_guardrails, key_guardrails
    action: Action
    name: str
    detail: dict[str, Any] = field(default_factory=dict)
    needs_admin: bool = False

    def describe(self) -> str:
        symbol = _SYMBOL[self.action]
        if self.subject in ("alias", "label"):
            before, after = self.detail.get("from"), self.detail.get("to")
            if self.action == "remove":
                return f"{symbol} {self.subject} {self.name} (was v{before})"
            return f"{symbol} {self.subject} {self.name}: {'v' + str(before) if before else 'unset'} → v{after}"
        if self.subject.endswith("_version"):
            return f"{symbol} {self.subject.replace('_', ' ')} {self.name}"
        fields = self.detail.get("fields")
        return f"{symbol} {self.subject.replace('_', ' ')} {self.name}" + (
            f" ({', '.join(fields)} changed)" if fields else ""
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "action": self.action,
            "name": self.name,
            "detail": self.detail,
            "needs_admin": self.needs_admin,
            "description": self.describe(),
        }


@dataclass
class CurrentState:
    """The registry's side, as the plan needs it."""

    file_routes: dict[str, RouteConfig]
    applied_routes: dict[str, RouteConfig]
    #: (kind, name) -> {version: digest}
    versions: dict[tuple[Kind, str], dict[int, str]]
    #: (kind, name) -> {label: version}
    pointers: dict[tuple[Kind, str], dict[str, int]]
    descriptions: dict[tuple[Kind, str], str | None]
    #: scope (``teams``, ``keys``) -> name -> attachment, from the gateway's config file and applied.
    file_guardrails: dict[str, dict[str, GuardrailAttachment]] = field(default_factory=dict)
    applied_guardrails: dict[str, dict[str, GuardrailAttachment]] = field(default_factory=dict)


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def needs_admin(self) -> list[Change]:
        return [c for c in self.changes if c.needs_admin]

    def digest(self) -> str:
        """Names this exact plan, so an apply can insist on the plan it was shown."""
        return digest([c.to_dict() for c in self.changes])

    def summary(self) -> str:
        if not self.changes:
            return "no changes"
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        return ", ".join(f"{n} to {action}" for action, n in sorted(counts.items()))


def _route_dump(route: RouteConfig) -> dict[str, Any]:
    data: dict[str, Any] = route.model_dump(mode="json", by_alias=True)
    return data


def _difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return {
        "fields": changed,
        "from": {k: before.get(k) for k in changed},
        "to": {k: after.get(k) for k in changed},
    }


def _plan_routes(declared: list[RouteConfig], current: CurrentState, prune: bool, plan: Plan) -> None:
    wanted = {r.name: r for r in declared}
    for name, route in wanted.items():
        live = current.applied_routes.get(name) or current.file_routes.get(name)
        if live is not None and _route_dump(live) == _route_dump(route):
            continue
        if live is None:
            plan.changes.append(Change("route", "create", name, {"to": _route_dump(route)}, needs_admin=True))
            continue
        detail = _difference(_route_dump(live), _route_dump(route))
        plan.changes.append(Change("route", "update", name, detail, needs_admin=True))
    if prune:
        for name in sorted(set(current.applied_routes) - set(wanted)):
            plan.changes.append(Change("route", "delete", name, needs_admin=True))


def attachment_dump(attachment: GuardrailAttachment) -> dict[str, Any]:
    """An attachment as stored and compared (JSON types, defaults included)."""
    data: dict[str, Any] = attachment.model_dump(mode="json")
    return data


def _plan_guardrails(declared: DeclaredGuardrails, current: CurrentState, prune: bool, plan: Plan) -> None:
    """Teams' and keys' guardrails: changing who is checked by what is a policy change, so admins only."""
    for scope, subject in GUARDRAIL_SCOPES.items():
        wanted: dict[str, GuardrailAttachment] = getattr(declared, scope)
        applied = current.applied_guardrails.get(scope, {})
        filed = current.file_guardrails.get(scope, {})
        for name, attachment in sorted(wanted.items()):
            live = applied.get(name) or filed.get(name)
            after = attachment_dump(attachment)
            if live is None:
                plan.changes.append(Change(subject, "create", name, {"to": after}, needs_admin=True))
            elif attachment_dump(live) != after:
                detail = _difference(attachment_dump(live), after)
                plan.changes.append(Change(subject, "update", name, detail, needs_admin=True))
        if prune:
            for name in sorted(set(applied) - set(wanted)):
                detail = {"from": attachment_dump(applied[name])}
                plan.changes.append(Change(subject, "delete", name, detail, needs_admin=True))


def _plan_versioned(
    kind: Kind,
    specs: list[ModelSpec] | list[PromptSpec],
    current: CurrentState,
    protected: dict[str, str],
    prune: bool,
    plan: Plan,
) -> None:
    word = POINTER_WORD[kind]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            plan.conflicts.append(f"{kind} {spec.name} is declared twice")
            continue
        seen.add(spec.name)
        key = (kind, spec.name)
        stored = current.versions.get(key, {})
        if key not in current.descriptions:
            plan.changes.append(Change(kind, "create", spec.name, {"description": spec.description}))
        elif spec.description is not None and current.descriptions[key] != spec.description:
            plan.changes.append(Change(kind, "update", spec.name, {"fields": ["description"], "to": spec.description}))
        available = set(stored)
        next_number = max(stored, default=0) + 1
        declared_versions: list[ModelVersionSpec | PromptVersionSpec] = list(spec.versions)
        for declared in sorted(declared_versions, key=lambda v: v.version or 0):
            number = declared.version
            if number is None:
                plan.conflicts.append(f"{kind} {spec.name}: every declared version needs `version: N`")
                continue
            content = spec_digest(declared)
            if number in stored:
                if stored[number] != content:
                    plan.conflicts.append(
                        f"{kind} {spec.name} v{number} differs from the registry's v{number}; versions are "
                        f"immutable: declare the change as v{max(stored) + 1}"
                    )
                continue
            if number != next_number:
                plan.conflicts.append(f"{kind} {spec.name}: v{number} declared but the next version is v{next_number}")
                continue
            detail = {"version": number, "digest": content}
            plan.changes.append(Change(f"{kind}_version", "create", f"{spec.name} v{number}", detail))
            available.add(number)
            next_number += 1
        pointers = current.pointers.get(key, {})
        labels = spec.pointers
        for label, number in sorted(labels.items()):
            if number not in available:
                plan.conflicts.append(f"{spec.name}@{label} points at v{number}, which is neither stored nor declared")
                continue
            if pointers.get(label) != number:
                detail = {"from": pointers.get(label), "to": number}
                admin = protected.get(label) == "admin"
                plan.changes.append(Change(word, "move", f"{spec.name}@{label}", detail, needs_admin=admin))
        if prune:
            for label in sorted(set(pointers) - set(labels)):
                detail = {"from": pointers[label], "to": None}
                admin = protected.get(label) == "admin"
                plan.changes.append(Change(word, "remove", f"{spec.name}@{label}", detail, needs_admin=admin))


def compute_plan(declared: Declared, current: CurrentState, *, protected: dict[str, str], prune: bool = False) -> Plan:
    plan = Plan()
    _plan_routes(declared.routes, current, prune, plan)
    _plan_versioned("model", declared.models, current, protected, prune, plan)
    _plan_versioned("prompt", declared.prompts, current, protected, prune, plan)
    _plan_guardrails(declared.guardrails, current, prune, plan)
    return plan


class ApplyRequest(Declared):
    """A declared state (``routes``, ``models``, ``prompts``, ``guardrails``) and how to apply it."""

    dry_run: bool = False
    prune: bool = Field(
        default=False,
        description="also remove applied routes, aliases/labels and guardrail attachments not declared",
    )
    plan_hash: str | None = Field(default=None, description="apply only if the plan is still the one with this hash")
