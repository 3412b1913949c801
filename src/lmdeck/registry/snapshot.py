"""The registry as one immutable, in-memory view: what the gateway reads on the request path.

A snapshot is loaded in a worker thread whenever the registry's revision
changes and then swapped in whole, so a request sees one consistent registry
and never waits on the database::

    snap = load_snapshot(db)
    version = snap.model("support-bot@production")   # -> Version[ModelVersionSpec]
    prompt = snap.prompt("support-reply", label="production")
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.policy.ownership import Owner
from lmdeck.protocol import APIError
from lmdeck.protocol.guardrails import GuardrailAttachment
from lmdeck.protocol.registry import ModelVersionSpec, PromptVersionSpec
from lmdeck.protocol.templates import PromptTemplate, PromptTemplateError
from lmdeck.registry.labels import LATEST
from lmdeck.registry.owners import owner_of_row
from lmdeck.registry.sql import loads, revision
from lmdeck.registry.versions import Version, VersionStore
from lmdeck.settings import RouteConfig

#: The label a prompt reference uses when it names neither a label nor a version.
DEFAULT_PROMPT_LABEL = "production"


@dataclass(frozen=True)
class ModelRef:
    """``name@alias`` or ``name@3`` parsed."""

    name: str
    label: str | None
    version: int | None

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        name, sep, pointer = ref.partition("@")
        if not sep or not name or not pointer:
            raise ValueError(
                f"registry model {ref!r} needs an alias or a version: write {name or 'name'}@production "
                f"or {name or 'name'}@3"
            )
        if pointer.isdigit():
            return cls(name, None, int(pointer))
        return cls(name, pointer, None)

    def __str__(self) -> str:
        return f"{self.name}@{self.label if self.label is not None else self.version}"


@dataclass(frozen=True)
class CompiledPrompt:
    version: Version[PromptVersionSpec]
    template: PromptTemplate


@dataclass
class RegistrySnapshot:
    """Everything the request path needs, keyed for dictionary lookups."""

    revision: int = 0
    models: dict[tuple[str, int], Version[ModelVersionSpec]] = field(default_factory=dict)
    model_aliases: dict[tuple[str, str], int] = field(default_factory=dict)
    prompts: dict[tuple[str, int], CompiledPrompt] = field(default_factory=dict)
    prompt_labels: dict[tuple[str, str], int] = field(default_factory=dict)
    routes: dict[str, RouteConfig] = field(default_factory=dict)
    #: Guardrail attachments applied with ``lmdeck apply``, by team (id or name) and by key (id or name).
    team_guardrails: dict[str, GuardrailAttachment] = field(default_factory=dict)
    key_guardrails: dict[str, GuardrailAttachment] = field(default_factory=dict)
    latest: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (kind, name) -> who owns the registered model or prompt.
    owners: dict[tuple[str, str], Owner] = field(default_factory=dict)
    #: Bundle hashes computed against this snapshot (it never changes, so they never go stale).
    bundles: dict[Any, str] = field(default_factory=dict)

    def owner(self, kind: str, name: str) -> Owner | None:
        """Who owns the model or prompt ``name`` (None when it is not registered)."""
        return self.owners.get((kind, name))

    def model_version(self, ref: ModelRef) -> int | None:
        if ref.version is not None:
            return ref.version if (ref.name, ref.version) in self.models else None
        assert ref.label is not None
        if ref.label == LATEST:
            return self.latest.get(("model", ref.name))
        return self.model_aliases.get((ref.name, ref.label))

    def model(self, ref: str | ModelRef) -> Version[ModelVersionSpec]:
        """The version ``ref`` names now, or a 404 that says how to make it resolve."""
        parsed = ModelRef.parse(ref) if isinstance(ref, str) else ref
        number = self.model_version(parsed)
        if number is None:
            if parsed.version is not None or ("model", parsed.name) not in self.latest:
                hint = f"register it with `lmdeck models register {parsed.name} ...`"
            else:
                hint = f"point it with `lmdeck models alias {parsed.name} {parsed.label} VERSION`"
            raise APIError(404, f"registry model {parsed} does not resolve: {hint}", code="model_not_found")
        return self.models[(parsed.name, number)]

    def prompt(self, name: str, *, label: str | None = None, version: int | None = None) -> CompiledPrompt:
        """A prompt by label (default ``production``) or version, or a 404 naming the fix."""
        if version is None:
            label = label or DEFAULT_PROMPT_LABEL
            number = self.latest.get(("prompt", name)) if label == LATEST else self.prompt_labels.get((name, label))
            if number is None:
                if ("prompt", name) not in self.latest:
                    raise missing_prompt(name)
                raise APIError(
                    404,
                    f"prompt {name!r} has no label {label!r}: set it with `lmdeck prompts label {name} {label} VERSION`",
                    code="prompt_not_found",
                )
            version = number
        found = self.prompts.get((name, version))
        if found is None:
            raise APIError(404, f"prompt {name!r} has no version {version}", code="prompt_not_found")
        return found


def missing_prompt(name: str) -> APIError:
    return APIError(
        404, f"no prompt {name!r}: create it with `lmdeck prompts create {name} ...`", code="prompt_not_found"
    )


def load_snapshot(db: Database, previous: RegistrySnapshot | None = None) -> RegistrySnapshot:
    """Read the whole registry (blocking). Templates unchanged since ``previous`` are not recompiled."""
    models: VersionStore[ModelVersionSpec] = VersionStore(db, "model")
    prompts: VersionStore[PromptVersionSpec] = VersionStore(db, "prompt")
    snap = RegistrySnapshot()
    with db.engine.connect() as conn:
        snap.revision = revision(conn)
        for mv in models.versions("", conn):
            snap.models[(mv.name, mv.version)] = mv
            snap.latest[("model", mv.name)] = max(mv.version, snap.latest.get(("model", mv.name), 0))
        compiled: Mapping[tuple[str, int], CompiledPrompt] = previous.prompts if previous else {}
        for pv in prompts.versions("", conn):
            key = (pv.name, pv.version)
            before = compiled.get(key)
            if before is not None and before.version.digest == pv.digest:
                snap.prompts[key] = before
            else:
                try:
                    snap.prompts[key] = CompiledPrompt(pv, PromptTemplate(pv.spec))
                except PromptTemplateError:
                    continue  # accepted by an older lmdeck; left out rather than failing every request
            snap.latest[("prompt", pv.name)] = max(pv.version, snap.latest.get(("prompt", pv.name), 0))
        for kind in ("model", "prompt"):
            owned = conn.execute(text(f"SELECT name, team_id, visibility FROM registry_{kind}s")).all()
            for name, team, visibility in owned:
                snap.owners[(kind, str(name))] = owner_of_row(team, visibility)
        rows = conn.execute(text("SELECT kind, name, label, version FROM registry_labels")).all()
        for kind, name, label, number in rows:
            target = snap.model_aliases if kind == "model" else snap.prompt_labels
            target[(str(name), str(label))] = int(number)
        for name, spec in conn.execute(text("SELECT name, spec FROM registry_routes")).all():
            snap.routes[str(name)] = RouteConfig.model_validate(loads(spec))
        for scope, name, spec in conn.execute(text("SELECT scope, name, spec FROM registry_guardrail_attachments")):
            attached = snap.team_guardrails if scope == "teams" else snap.key_guardrails
            attached[str(name)] = GuardrailAttachment.model_validate(loads(spec))
    return snap
