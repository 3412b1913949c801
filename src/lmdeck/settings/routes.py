"""Routes: a public model name, the targets that serve it and how one is chosen.

A route's strategy (weighted, least-inflight, latency, cascade, learned), its stream commit,
prompt compression and feature-flag branches are declared here; its cache block is
:class:`~lmdeck.settings.cache.CacheConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmdeck.protocol.flags import FlagValue
from lmdeck.protocol.guardrails import DataClass, GuardrailAttachment
from lmdeck.protocol.headers import check_header, check_url
from lmdeck.settings.cache import CacheConfig
from lmdeck.settings.secrets import SecretRef, not_own_secret

#: Longest upstream timeout, in seconds: a day.
MAX_TIMEOUT = 86400.0


class TargetConfig(BaseModel):
    """One upstream a route may send a request to."""

    model_config = ConfigDict(extra="forbid")

    provider: str = "openai"
    model: str
    base_url: str | None = None
    api_key: SecretRef | None = None
    weight: float = Field(default=1.0, ge=0, le=1e6)
    timeout: float = Field(default=60.0, gt=0, le=MAX_TIMEOUT, description="seconds for the whole upstream call")
    ttft_timeout: float | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT, description="seconds until the first streamed token"
    )
    max_retries: int = Field(default=2, ge=0, le=10)
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers sent to the upstream")
    options: dict[str, Any] = Field(default_factory=dict, description="provider-specific options")
    unsupported_params: list[str] = Field(
        default_factory=list,
        description="request parameters this target cannot honour although its provider forwards them "
        "(e.g. [logprobs, top_logprobs] for a server without them): refused with a 400, skipped on fallback",
    )
    data_class: DataClass | None = Field(
        default=None,
        description="where requests sent here go: external (a third party) or in_house; default: in_house "
        "for the local provider, external otherwise (see docs/guardrails.md, data policy)",
    )

    @field_validator("api_key")
    @classmethod
    def _not_own_secret(cls, value: SecretRef | None) -> SecretRef | None:
        return not_own_secret(value)

    @field_validator("headers")
    @classmethod
    def _sendable_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            check_header(name, value)
        return headers

    @field_validator("base_url")
    @classmethod
    def _sendable_url(cls, url: str | None) -> str | None:
        if url is not None:
            check_url(url)
        return url

    @property
    def data_classification(self) -> DataClass:
        """``data_class``, or what the provider implies when it is not set."""
        if self.data_class is not None:
            return self.data_class
        return "in_house" if self.provider == "local" else "external"

    @property
    def id(self) -> str:
        base = self.base_url or ""
        return f"{self.provider}:{self.model}@{base}" if base else f"{self.provider}:{self.model}"


class StreamCommitConfig(BaseModel):
    """When the gateway commits a stream to the upstream serving it (see docs/resilience.md).

    Until then the first chunks are held back, so a failure can still be retried or sent to
    a fallback without the client seeing it; the stream is committed after ``chunks`` chunks
    that carry generated content, or ``max_hold_ms`` milliseconds after its first chunk,
    whichever comes first (or when it ends). Holding adds up to ``max_hold_ms`` to the time to
    first token; ``chunks: 0`` commits at the first chunk.
    """

    model_config = ConfigDict(extra="forbid")

    chunks: int = Field(default=3, ge=0, le=1000, description="content chunks held back before committing")
    max_hold_ms: float = Field(
        default=200.0, ge=0, le=60_000, description="longest hold after the first chunk, milliseconds"
    )


class CascadeCheckConfig(BaseModel):
    """One confidence check a cheaper target's answer must pass to be kept (see docs/resilience.md).

    ``logprob``: the answer's token log-probabilities (asked of the target whatever the client
    asked), aggregated by ``aggregate``, must be at least ``min_logprob`` (natural log, <= 0).
    ``evaluator``: the evaluator ``evaluator`` (a name from ``lmdeck eval evaluators``, with its
    options) must score the answer text at least ``min_score`` (0-1).
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["logprob", "evaluator"] = "logprob"
    min_logprob: float = Field(default=-0.5, le=0, description="least aggregated token log-probability (logprob)")
    aggregate: Literal["mean", "min"] = Field(default="mean", description="how token log-probabilities combine")
    evaluator: dict[str, Any] | None = Field(
        default=None, description="{name: ..., options: {...}}: the evaluator that judges the answer (evaluator)"
    )
    min_score: float = Field(default=1.0, ge=0, le=1, description="least evaluator score (evaluator)")

    @model_validator(mode="after")
    def _evaluator_named(self) -> CascadeCheckConfig:
        if self.kind == "evaluator":
            name = (self.evaluator or {}).get("name")
            if not isinstance(name, str) or not name:
                raise ValueError("a cascade check of kind 'evaluator' needs `evaluator: {name: ..., options: {...}}`")
            unknown = set(self.evaluator or {}) - {"name", "options"}
            if unknown:
                raise ValueError(f"cascade check `evaluator` takes name and options, not {', '.join(sorted(unknown))}")
        elif self.evaluator is not None:
            raise ValueError("`evaluator` is only read by a check of kind 'evaluator': set `kind: evaluator`")
        return self


class CascadeConfig(BaseModel):
    """How the ``cascade`` strategy decides to keep a cheaper target's answer or escalate.

    Targets are tried in the order listed, cheapest first; every check must pass for an
    answer to be kept, and the last target's answer is always kept. A streamed request is
    answered by ``stream: buffer`` (each cheaper answer is generated whole and checked, then
    sent as a stream; the last target streams as usual) or refused (``stream: refuse``, a 400
    naming ``stream``).
    """

    model_config = ConfigDict(extra="forbid")

    checks: list[CascadeCheckConfig] = Field(default_factory=lambda: [CascadeCheckConfig()], min_length=1)
    stream: Literal["buffer", "refuse"] = "buffer"


class LearnedRouterConfig(BaseModel):
    """The ``learned`` strategy: a classifier trained by ``lmdeck routers train ROUTE``.

    It predicts, from the request's embedding, the probability that each target suffices; the
    cheapest target (in the order listed) whose probability of sufficing is at least
    ``threshold`` answers first, the others stay in order as failover.
    """

    model_config = ConfigDict(extra="forbid")

    model_path: Path | None = Field(
        default=None, description="the trained router (default: <data_dir>/routers/<route>.json)"
    )
    threshold: float = Field(default=0.5, gt=0, lt=1, description="least probability that a cheaper target suffices")


class CompressionConfig(BaseModel):
    """Prompt compression, opt-in per route: fewer input tokens, the system prompt and last turns kept.

    Duplicate messages and runs of whitespace are dropped first; then, when the messages still
    exceed ``max_prompt_tokens``, the oldest turns are dropped (never a system/developer message
    nor the last ``keep_last_turns`` messages) until they fit.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_prompt_tokens: int | None = Field(
        default=None, ge=1, le=10_000_000, description="token budget for the messages"
    )
    keep_last_turns: int = Field(default=2, ge=1, le=10_000, description="latest messages never dropped")
    dedupe: bool = Field(default=True, description="drop repeated messages and collapse whitespace")


class RouteFlagRule(BaseModel):
    """One branch of a route on a feature flag: while ``flag`` gives ``equals``, send the request to
    ``route`` and/or fill the parameters it left unset from ``params`` (the first matching rule wins)::

        routes:
          - name: support
            targets: ["openai:gpt-4o-mini"]
            flags:
              - {flag: support-v2, equals: true, route: support-v2}
              - {flag: support-tone, equals: terse, params: {max_tokens: 64, temperature: 0.2}}
    """

    model_config = ConfigDict(extra="forbid")

    flag: str = Field(min_length=1, description="the flag's name")
    equals: FlagValue = Field(default=True, description="the value the flag must give (same type)")
    route: str | None = Field(default=None, description="the route that serves the request instead")
    params: dict[str, Any] = Field(default_factory=dict, description="request parameters, where the caller set none")

    @model_validator(mode="after")
    def _does_something(self) -> RouteFlagRule:
        if self.route is None and not self.params:
            raise ValueError(f"the rule on flag {self.flag!r} changes nothing: give `route` and/or `params`")
        fixed = sorted(set(self.params) & {"model", "messages", "prompt", "input", "stream"})
        if fixed:
            raise ValueError(f"`params` may not set {', '.join(fixed)}: use `route` to choose the model")
        return self


class RouteConfig(BaseModel):
    """A public model name and the targets that serve it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    targets: list[TargetConfig] = Field(min_length=1)
    strategy: Literal["weighted", "least-inflight", "latency", "cascade", "learned"] = "weighted"
    fallbacks: list[str] = Field(default_factory=list, description="route names tried in order on failure")
    description: str | None = None
    kind: Literal["chat", "embeddings"] = "chat"
    stream_commit: StreamCommitConfig = Field(default_factory=StreamCommitConfig)
    team: str | None = Field(
        default=None,
        description="the team (id or name) whose developers may move this route's traffic (experiments, "
        "alias moves); default: the team of the registry models it follows, else admins only",
    )
    guardrails: GuardrailAttachment | None = Field(
        default=None, description="guardrails on this route's requests and answers (docs/guardrails.md)"
    )
    cache: CacheConfig | None = Field(default=None, description="this route's response cache; default: `cache`")
    cascade: CascadeConfig | None = Field(default=None, description="checks of the `cascade` strategy")
    learned: LearnedRouterConfig | None = Field(default=None, description="the `learned` strategy's router")
    compression: CompressionConfig | None = Field(default=None, description="prompt compression (opt-in)")
    flags: list[RouteFlagRule] = Field(
        default_factory=list, description="branches on feature flags: another route or parameters (docs/delivery.md)"
    )
    batch: Literal["pipeline", "native"] = Field(
        default="pipeline", description="how `/v1/batches` rows run: `pipeline` (through lmdeck) is the only one"
    )

    @model_validator(mode="after")
    def _tiered_strategy(self) -> RouteConfig:
        if self.batch == "native":
            raise ValueError(
                f"route {self.name!r}: `batch: native` (forwarding batches to an upstream's batch API) is not "
                "supported: remove it; lmdeck runs every batch row through its own pipeline (docs/batches.md)"
            )
        if self.strategy in ("cascade", "learned"):
            if len(self.targets) < 2:
                raise ValueError(
                    f"route {self.name!r}: the {self.strategy} strategy needs at least two targets, cheapest first"
                )
            if self.kind != "chat":
                raise ValueError(f"route {self.name!r}: the {self.strategy} strategy serves chat routes only")
        if self.cascade is not None and self.strategy != "cascade":
            raise ValueError(f"route {self.name!r} has a `cascade` block: set `strategy: cascade` or remove it")
        if self.learned is not None and self.strategy != "learned":
            raise ValueError(f"route {self.name!r} has a `learned` block: set `strategy: learned` or remove it")
        return self

    @field_validator("targets", mode="before")
    @classmethod
    def _target_shorthand(cls, targets: Any) -> Any:
        # "registry:support-bot@production" is short for {provider: registry, model: support-bot@production}.
        if not isinstance(targets, list):
            return targets
        out = []
        for target in targets:
            if isinstance(target, str):
                provider, sep, model = target.partition(":")
                if not sep or not provider or not model:
                    raise ValueError(f"target {target!r}: write a mapping or the shorthand 'provider:model'")
                target = {"provider": provider, "model": model}
            out.append(target)
        return out
