"""The configured guardrails, built from the settings: named instances and who they apply to.

    config = GuardrailConfig.build(settings, load_guardrails(), resources)
    plan = config.plan_for(route_config, principal)      # the route's, then the team's, then the key's
    plan.input                                            # [Attached(name, guardrail, use), ...]

:func:`config_problems` is what ``lmdeck config check`` and start-up report: every problem
with the path in the config file it concerns (``("routes", 0, "guardrails", "input", 1, "use")``),
so that it can be given a line number.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lmdeck.guardrails.base import Guardrail, GuardrailError, GuardResources, Stage
from lmdeck.guardrails.registry import GuardrailRegistry
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol.guardrails import (
    DataPolicy,
    GuardrailAttachment,
    GuardrailDefinition,
    GuardrailSettings,
    GuardrailUse,
)
from lmdeck.settings import ConfigError, RouteConfig, Settings

log = logging.getLogger(__name__)

#: A place in the config file: keys and list indexes from its root.
ConfigPath = tuple[str | int, ...]

#: Applied attachments: (by team id or name, by key id or name).
AppliedAttachments = tuple[Mapping[str, GuardrailAttachment], Mapping[str, GuardrailAttachment]]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem of the guardrail configuration and where in the file it is."""

    path: ConfigPath
    message: str

    def __str__(self) -> str:
        return f"{'.'.join(str(p) for p in self.path)}: {self.message}"


@dataclass(frozen=True)
class Attached:
    """One guardrail attached to a request: the definition's ``name``, the built instance, and how it is used."""

    name: str
    guardrail: Guardrail
    use: GuardrailUse


@dataclass(frozen=True)
class GuardPlan:
    """The guardrails one request goes through, in order, and the stream window of its route."""

    input: tuple[Attached, ...] = ()
    output: tuple[Attached, ...] = ()
    stream_window: int = 256

    @property
    def empty(self) -> bool:
        return not self.input and not self.output


EMPTY_PLAN = GuardPlan()


def _attachments(settings: Settings) -> Iterable[tuple[ConfigPath, GuardrailAttachment]]:
    for i, route in enumerate(settings.routes):
        if route.guardrails is not None:
            yield ("routes", i, "guardrails"), route.guardrails
    for team, attachment in settings.guardrails.teams.items():
        yield ("guardrails", "teams", team), attachment
    for key, attachment in settings.guardrails.keys.items():
        yield ("guardrails", "keys", key), attachment


def config_problems(
    settings: Settings, registry: GuardrailRegistry, resources: GuardResources | None = None
) -> list[ConfigIssue]:
    """Every problem of the guardrail configuration: unknown types, bad options, unknown names.

    Builds each definition with ``resources`` (those the gateway lends; by default none, so a
    guardrail that needs a model reports what to configure only when it is really built).
    """
    issues: list[ConfigIssue] = []
    built: dict[str, Guardrail] = {}
    block = settings.guardrails
    for name, definition in block.definitions.items():
        try:
            built[name] = registry.create(definition.type, definition.options, resources)
        except GuardrailError as exc:
            where: ConfigPath = ("guardrails", "definitions", name)
            known = definition.type in registry.names() or definition.type in registry.unavailable
            issues.append(ConfigIssue((*where, "options" if known else "type"), str(exc)))
    route_names = {r.name for r in settings.routes} | {"demo", "embed"}
    for path, attachment in _attachments(settings):
        for stage in ("input", "output"):
            uses: list[GuardrailUse] = getattr(attachment, stage)
            for i, use in enumerate(uses):
                here: ConfigPath = (*path, stage, i)
                if use.use not in block.definitions:
                    defined = ", ".join(sorted(block.definitions)) or "none"
                    issues.append(
                        ConfigIssue(
                            (*here, "use"),
                            f"no guardrail named {use.use!r} in guardrails.definitions (defined: {defined})",
                        )
                    )
                    continue
                guardrail = built.get(use.use)
                if guardrail is not None and use.options:
                    merged = {**block.definitions[use.use].options, **use.options}
                    try:
                        registry.create(block.definitions[use.use].type, merged, resources)
                    except GuardrailError as exc:
                        issues.append(ConfigIssue((*here, "options"), str(exc)))
                if guardrail is not None and stage not in guardrail.stages:
                    issues.append(
                        ConfigIssue(
                            (*here, "use"),
                            f"guardrail {use.use!r} (type {block.definitions[use.use].type!r}) checks only "
                            f"{', '.join(sorted(guardrail.stages))}, not {stage}",
                        )
                    )
                if guardrail is not None and use.action == "mask" and stage == "output" and use.mode == "async":
                    issues.append(ConfigIssue((*here, "action"), "an async guardrail can only flag"))
                if use.route is not None and use.route not in route_names:
                    issues.append(ConfigIssue((*here, "route"), f"no route named {use.route!r} to fall back to"))
    policy = block.data_policy
    if policy is not None:
        for i, name in enumerate(policy.restricted):
            if name not in block.definitions:
                issues.append(
                    ConfigIssue(
                        ("guardrails", "data_policy", "restricted", i),
                        f"no guardrail named {name!r} in guardrails.definitions",
                    )
                )
        if policy.route is not None and policy.route not in route_names:
            issues.append(ConfigIssue(("guardrails", "data_policy", "route"), f"no route named {policy.route!r}"))
    return issues


@dataclass
class GuardrailConfig:
    """The built guardrail instances by definition name, and the attachments of teams and keys."""

    instances: dict[str, Guardrail] = field(default_factory=dict)
    teams: Mapping[str, GuardrailAttachment] = field(default_factory=dict)
    keys: Mapping[str, GuardrailAttachment] = field(default_factory=dict)
    data_policy: DataPolicy | None = None
    #: The registered type of each definition, by name.
    kinds: Mapping[str, str] = field(default_factory=dict)
    #: Instances built with an attachment's own ``options`` (see :meth:`instance`), by :func:`variant_key`.
    variants: dict[str, Guardrail] = field(default_factory=dict)
    #: What builds a variant first seen at run time (a route applied with its own options).
    build_variant: Callable[[str, Mapping[str, Any]], Guardrail] | None = None
    #: The name of a team id (the key cache's), so that ``teams`` may be keyed by either.
    team_name: Callable[[str | None], str | None] = field(default=lambda _team_id: None)
    #: The teams' and keys' attachments applied with ``lmdeck apply`` now (the live registry's), read per
    #: request; one replaces the config file's attachment of the same team or key.
    applied: Callable[[], AppliedAttachments] = field(default=lambda: ({}, {}))
    #: The definitions the instances were built from, by name (their type and options key the cache).
    definitions: Mapping[str, GuardrailDefinition] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, registry: GuardrailRegistry, resources: GuardResources) -> GuardrailConfig:
        """Every definition built once; raises ConfigError listing each problem (see :func:`config_problems`)."""
        block: GuardrailSettings = settings.guardrails
        issues = config_problems(settings, registry, resources)
        if issues:
            lines = "\n".join(f"  {issue}" for issue in issues)
            raise ConfigError(f"the guardrail configuration is not valid:\n{lines}")
        instances = {name: registry.create(d.type, d.options, resources) for name, d in block.definitions.items()}
        kinds = {name: d.type for name, d in block.definitions.items()}

        def build_variant(name: str, options: Mapping[str, Any]) -> Guardrail:
            definition = block.definitions[name]
            return registry.create(definition.type, {**definition.options, **options}, resources)

        config = cls(
            instances,
            block.teams,
            block.keys,
            block.data_policy,
            kinds=kinds,
            build_variant=build_variant,
            definitions=block.definitions,
        )
        for _, attachment in _attachments(settings):
            for use in [*attachment.input, *attachment.output]:
                config.instance(use)  # built now: a bad option fails the start, not a request
        return config

    def instance(self, use: GuardrailUse) -> Guardrail | None:
        """The instance an attachment runs: the definition's, or one built with the attachment's own options."""
        base = self.instances.get(use.use)
        if base is None or not use.options:
            return base
        key = variant_key(use.use, use.options)
        variant = self.variants.get(key)
        if variant is None:
            if self.build_variant is None:
                return base
            try:
                variant = self.build_variant(use.use, use.options)
            except GuardrailError:
                log.warning(
                    "guardrail %r: the options %r of an attachment are refused; using the definition's",
                    use.use,
                    use.options,
                    exc_info=True,
                )
                variant = base
            self.variants[key] = variant
        return variant

    def attached(self, attachment: GuardrailAttachment, stage: Stage) -> list[Attached]:
        uses: list[GuardrailUse] = attachment.input if stage == "input" else attachment.output
        out = []
        for use in uses:
            guardrail = self.instance(use)
            if guardrail is None:
                log.warning("no guardrail named %r is defined; the attachment is skipped", use.use)
                continue
            out.append(Attached(use.use, guardrail, use))
        return out

    def plan_for(self, route: RouteConfig | None, principal: Principal | None) -> GuardPlan:
        """The route's guardrails, then its caller's team's, then its key's (a name attached twice keeps the last)."""
        attachments: list[GuardrailAttachment] = []
        if route is not None and route.guardrails is not None:
            attachments.append(route.guardrails)
        if principal is not None:
            applied_teams, applied_keys = self.applied()
            team_names = (principal.team_id, self.team_name(principal.team_id))
            key_names = (principal.key_id, principal.name)
            team = _lookup(applied_teams, *team_names)
            team = team if team is not None else _lookup(self.teams, *team_names)
            key = _lookup(applied_keys, *key_names)
            key = key if key is not None else _lookup(self.keys, *key_names)
            attachments.extend(a for a in (team, key) if a is not None)
        if not attachments:
            return EMPTY_PLAN
        stages: dict[Stage, dict[str, Attached]] = {"input": {}, "output": {}}
        for attachment in attachments:
            for stage in ("input", "output"):
                for item in self.attached(attachment, stage):  # type: ignore[arg-type]
                    stages[stage].pop(item.name, None)  # type: ignore[index]
                    stages[stage][item.name] = item  # type: ignore[index]
        return GuardPlan(
            input=tuple(stages["input"].values()),
            output=tuple(stages["output"].values()),
            stream_window=max(a.stream_window for a in attachments),
        )

    def policy_digest(self, plan: GuardPlan) -> str:
        """The sha256 (64 hex digits) of the guardrail policy ``plan`` applies: each input and output
        attachment (its use: action, mode, options...) with its definition (type, options), the stream
        window and the data policy. Two requests share a cached answer only under one digest."""
        definitions = self.definitions

        def stage(items: tuple[Attached, ...]) -> list[dict[str, Any]]:
            return [
                {
                    "use": a.use.model_dump(mode="json"),
                    "definition": definitions[a.name].model_dump(mode="json") if a.name in definitions else None,
                }
                for a in items
            ]

        policy = {
            "input": stage(plan.input),
            "output": stage(plan.output),
            "stream_window": plan.stream_window,
            "data_policy": self.data_policy.model_dump(mode="json") if self.data_policy is not None else None,
        }
        return hashlib.sha256(json.dumps(policy, sort_keys=True, default=str).encode()).hexdigest()


def variant_key(name: str, options: Mapping[str, Any]) -> str:
    return name + json.dumps(options, sort_keys=True, default=str)


def _lookup(table: Mapping[str, Any], *names: str | None) -> Any:
    for name in names:
        if name and name in table:
            return table[name]
    return None
