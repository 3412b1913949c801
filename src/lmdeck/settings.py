"""One typed settings object for the whole process.

Settings come from an optional YAML file (``lmdeck.yaml``) plus a handful of
environment variables, all read here and nowhere else. Zero configuration is
valid: the defaults serve the bundled local model on 127.0.0.1:4000 with a
SQLite store under ``./.lmdeck``.

Secrets are never written inline. A value of the form ``{"$env": "NAME"}``
(or ``{"$secret": "name"}``, or ``{"$vault": "path#field"}``) is a :class:`SecretRef`,
resolved only when a provider needs it::

    routes:
      - name: gpt-4o
        targets:
          - provider: openai
            model: gpt-4o
            api_key: {"$env": "OPENAI_API_KEY"}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from lmdeck.protocol.alerts import AlertsDeclared
from lmdeck.protocol.flags import FlagSpec, FlagValue
from lmdeck.protocol.guardrails import DataClass, GuardrailAttachment, GuardrailSettings
from lmdeck.protocol.headers import check_header, check_url, control_problem
from lmdeck.protocol.registry import ModelSpec, PromptSpec, RegistryName
from lmdeck.protocol.retention import RetentionPolicySpec
from lmdeck.protocol.secrets import SecretReference

ENV_PREFIX = "LMDECK_"

#: Every environment variable lmdeck reads, with what it means. A test keeps this
#: list and the documentation in step.
ENVIRONMENT: dict[str, str] = {
    "LMDECK_CONFIG": "path of the YAML config file (default: ./lmdeck.yaml when present)",
    "LMDECK_HOST": "address to listen on (default 127.0.0.1)",
    "LMDECK_PORT": "port to listen on (default 4000)",
    "LMDECK_DATA_DIR": "directory for the SQLite store, trace spool and local state (default ./.lmdeck)",
    "LMDECK_DATABASE_URL": "SQLAlchemy URL of the store (default sqlite under the data dir)",
    "LMDECK_ADMIN_KEY": "admin API key to bootstrap instead of generating one at first start",
    "LMDECK_MASTER_KEY": "Fernet key that encrypts provider secrets at rest",
    "LMDECK_OTLP_ENDPOINT": "OTLP/HTTP base URL for OpenTelemetry spans and GenAI metrics; `/v1/traces` and "
    "`/v1/metrics` are appended (a URL already ending in `/v1/traces` is kept) (default: nothing exported)",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "OpenTelemetry's name for the OTLP/HTTP base URL, read when LMDECK_OTLP_ENDPOINT is unset",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "OTLP/HTTP URL for spans, used as it is (overrides the base URL's `/v1/traces`)",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "OTLP/HTTP URL for metrics, used as it is (overrides the base URL's `/v1/metrics`)",
    "OTEL_EXPORTER_OTLP_HEADERS": "headers sent with every OTLP export, `key1=value1,key2=value2` (values URL-encoded)",
    "LMDECK_LOCAL_DEVICE": "device for the local engine: cpu, cuda or auto (default auto)",
    "LMDECK_LOG_LEVEL": "log level (default info)",
    "LMDECK_LOG_FILE": "also write the log to this file, created with mode 0600 (default: stderr only)",
    "LMDECK_WORKERS": "worker processes `lmdeck serve` runs on its port (default 1; see docs/serving.md)",
    "LMDECK_TLS_CERT": "PEM certificate (chain) to serve HTTPS with; needs LMDECK_TLS_KEY (default: plain HTTP)",
    "LMDECK_TLS_KEY": "PEM private key of LMDECK_TLS_CERT (default: plain HTTP)",
    "LMDECK_BASE_URL": "where the Python client and the CLI reach the gateway (default http://127.0.0.1:4000)",
    "LMDECK_API_KEY": "API key the Python client and the CLI send (default: none)",
    "LMDECK_REDIS_URL": "Redis URL (`redis.url`) that replicas share limits, budgets, breakers, the cache and change "
    "notices through, e.g. redis://127.0.0.1:6379/0 (default: none, everything per process)",
    "VAULT_ADDR": 'HashiCorp Vault base URL for {"$vault": "path#field"} references (`vault.address`; default: none)',
    "VAULT_TOKEN": "Vault token sent as X-Vault-Token (the default `vault.token`)",
    "VAULT_NAMESPACE": "Vault Enterprise namespace sent as X-Vault-Namespace (`vault.namespace`; default: none)",
}

#: Longest upstream timeout, in seconds: a day.
MAX_TIMEOUT = 86400.0


class SecretRef(SecretReference):
    """A :class:`~lmdeck.protocol.secrets.SecretReference` that can be resolved to the secret it names.

    >>> SecretRef.model_validate({"$env": "OPENAI_API_KEY"})
    SecretRef(env='OPENAI_API_KEY')
    """

    _lookup: Callable[[str], str] | None = PrivateAttr(default=None)
    _vault: Callable[[str], str] | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, reference: SecretReference) -> SecretRef:
        """``reference`` (as a request or a stored version carried it), resolvable."""
        if isinstance(reference, SecretRef):
            return reference
        return cls.model_validate(reference.model_dump(by_alias=True))

    def bind(self, lookup: Callable[[str], str]) -> None:
        """Give a ``$secret`` reference the store lookup it resolves through."""
        self._lookup = lookup

    def bind_vault(self, read: Callable[[str], str]) -> None:
        """Give a ``$vault`` reference the Vault reader it resolves through (``read("path#field")``)."""
        self._vault = read

    def resolve(self, environ: Mapping[str, str] | None = None) -> str:
        if self.vault is not None:
            if self._vault is None:
                raise ConfigError(
                    f'secret {{"$vault": {self.vault!r}}} needs Vault, which is not configured here: '
                    "set vault.address (or VAULT_ADDR) and VAULT_TOKEN"
                )
            return self._vault(self.vault)
        if self.secret is not None:
            if self._lookup is None:
                raise ConfigError(
                    f"secret {self.secret!r} is kept in lmdeck's store, which is not open here: "
                    'resolve it inside the gateway, or use {"$env": ...} instead'
                )
            stored = self._lookup(self.secret)
            problem = control_problem(stored)
            if problem:
                raise ConfigError(f"secret {self.secret!r} {problem}: store it again without it")
            return stored
        assert self.env is not None
        value = (os.environ if environ is None else environ).get(self.env)
        if not value:
            raise ConfigError(f"secret {self.env!r} is not set: export {self.env}=... before starting lmdeck")
        problem = control_problem(value)
        if problem:
            # Secrets are sent in headers, where a line break cannot go (it would fail every request).
            raise ConfigError(
                f"secret {self.env!r} {problem}: set it without the trailing newline or other control characters"
            )
        return value

    def __repr__(self) -> str:
        if self.vault is not None:
            return f"SecretRef(vault={self.vault!r})"
        return f"SecretRef(secret={self.secret!r})" if self.secret is not None else f"SecretRef(env={self.env!r})"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says how to fix it."""


#: lmdeck's own secrets: read once at start, never a provider credential sent upstream.
OWN_SECRETS = frozenset({"LMDECK_ADMIN_KEY", "LMDECK_MASTER_KEY"})


def not_own_secret(ref: SecretRef | None) -> SecretRef | None:
    """``ref`` unchanged, or ValueError when it names one of :data:`OWN_SECRETS`."""
    if ref is not None and ref.env in OWN_SECRETS:
        raise ValueError(f"{ref.env} is lmdeck's own secret and is never sent upstream: name the provider's key")
    return ref


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


class SemanticCacheConfig(BaseModel):
    """The semantic cache of a route (see docs/caching.md): a request whose user text means the same
    as a cached one's, in the same shape (tools, response_format, system prompt), gets its answer."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    threshold: float = Field(default=0.89, gt=0, le=1, description="least cosine similarity of a match")
    verify_threshold: float | None = Field(
        default=None, gt=0, le=1, description="a stricter similarity a candidate must pass again (None: no check)"
    )
    verify_terms: bool = Field(
        default=True,
        description="a match must use the same numbers, negations and content words (docs/caching.md)",
    )


class CacheConfig(BaseModel):
    """A route's response cache (see docs/caching.md); fields a route leaves out come from the global ``cache``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    ttl_s: float = Field(default=3600.0, gt=0, le=366 * 86400, description="seconds an answer stays servable")
    scope: Literal["team", "key", "global"] = Field(
        default="team", description="who shares entries: the caller's team (its key when it has none), key, or all"
    )
    allow_sampled: bool = Field(
        default=False, description="cache requests sampled at temperature > 0 (or left at the upstream's default)"
    )
    semantic: SemanticCacheConfig = Field(default_factory=SemanticCacheConfig)


class CacheSettings(CacheConfig):
    """The gateway's response cache: defaults for every route plus the store's size."""

    max_entries: int = Field(default=10_000, ge=1, description="entries kept in memory; least recently used go first")
    persist: bool = Field(default=True, description="keep entries across restarts in data_dir/cache.sqlite3")

    def for_route(self, route: CacheConfig | None) -> CacheConfig:
        """The route's cache config: what the route set (in ``semantic`` too), the rest from these settings."""
        base = CacheConfig.model_validate(self.model_dump(include=set(CacheConfig.model_fields)))
        if route is None:
            return base
        update = {}
        for name in route.model_fields_set:
            value = getattr(route, name)
            if isinstance(value, SemanticCacheConfig):  # merged field by field, like the block around it
                value = base.semantic.model_copy(update={n: getattr(value, n) for n in value.model_fields_set})
            update[name] = value
        return base.model_copy(update=update)


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


class BreakerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)
    reset_timeout: float = Field(default=30.0, gt=0, description="seconds open before a half-open probe")
    half_open_max: int = Field(default=1, ge=1)


class RetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backoff_base: float = Field(default=0.25, ge=0)
    backoff_max: float = Field(default=8.0, ge=0)
    max_retry_after: float = Field(default=30.0, ge=0, description="longest Retry-After honoured, seconds")


class TraceRetentionSettings(BaseModel):
    """How long trace data is kept, in days (null: forever); see lmdeck.tracing.retention."""

    model_config = ConfigDict(extra="forbid")

    raw_days: int | None = Field(default=30, ge=1, description="raw traces, with their bodies, tags and search entries")
    minute_days: int | None = Field(default=30, ge=1, description="per-minute rollups")
    rollup_days: int | None = Field(default=396, ge=1, description="hourly and daily rollups (13 months)")
    prune_interval_s: float | None = Field(
        default=3600.0, gt=0, description="seconds between two runs of the serving process's retention job; null: never"
    )
    body_days: int | None = Field(
        default=None, ge=1, description="request/response bodies of every trace (the trace row is kept); null: raw_days"
    )
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="rows deleted or cleared per transaction")
    policies: list[RetentionPolicySpec] = Field(
        default_factory=list,
        description="per team and per route retention of bodies and traces (lmdeck.protocol.retention); "
        "those stored through the API or `lmdeck apply` replace these by name",
    )

    @field_validator("policies")
    @classmethod
    def _unique_policies(cls, value: list[RetentionPolicySpec]) -> list[RetentionPolicySpec]:
        names = [p.name for p in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"retention policies declared twice: {', '.join(twice)}")
        scopes = [(p.team, p.route) for p in value]
        for team, route in sorted({s for s in scopes if scopes.count(s) > 1}, key=str):
            same = ", ".join(p.name for p in value if (p.team, p.route) == (team, route))
            raise ValueError(f"retention policies {same} cover the same team {team or '*'} and route {route or '*'}")
        return value


class TracingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    redact: Literal["none", "bodies", "all"] = "none"
    fsync_interval_ms: float = Field(
        default=0.0,
        ge=0,
        description="least time between two fsyncs of the spool; 0 writes as soon as the previous fsync "
        "ends, so records that arrive during one fsync share the next (group commit without a wait)",
    )
    batch_size: int = Field(default=500, ge=1)
    segment_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    analytics_workers: int = Field(
        default=2, ge=1, description="analytics queries (spend, summaries, listings, search) at once"
    )
    analytics_processes: bool = Field(
        default=True,
        description="run analytics queries in separate, lower-priority processes (threads for an in-memory store)",
    )
    analytics_timeout_s: float = Field(default=10.0, gt=0, description="an analytics query past this answers 503")
    retention: TraceRetentionSettings = Field(default_factory=TraceRetentionSettings)
    analytics_queue: int = Field(
        default=32, ge=0, description="analytics queries waiting beyond the workers; more answer 503"
    )
    otlp_max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="largest OTLP trace export (POST /v1/traces) accepted, in bytes, after any gzip decoding; "
        "larger ones answer 413",
    )
    capture_content: bool = Field(
        default=False,
        description="put the messages on exported spans (`gen_ai.input.messages`, `gen_ai.output.messages`, "
        "`gen_ai.system_instructions`); only while `redact` is `none`",
    )
    unspanned_paths: list[str] = Field(
        default_factory=lambda: ["/health/live", "/health/ready", "/metrics"],
        description="request paths that get no OpenTelemetry span (probes and scrapes, which would drown the "
        "traces); exact paths",
    )
    refused_spans_per_second: float = Field(
        default=10.0,
        ge=0,
        description="SERVER spans exported per second (bursts up to as many) for requests refused before routing "
        "(400, 401, 403, 413, 429); the rest are not exported",
    )
    refused_records_per_minute: int = Field(
        default=20,
        ge=0,
        description="trace records written per client address and minute for /v1/ requests refused before a key "
        "was read (401, 413); the rest are only counted in lmdeck_requests_refused_total",
    )
    otlp_queue_spans: int = Field(
        default=20_000,
        ge=1,
        description="spans received over OTLP and not yet stored; an export past it answers 503 (the exporter retries)",
    )


class LocalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    device: str = "auto"
    quantize: Literal["none", "int8"] = "none"
    max_batch_size: int = Field(default=32, ge=1)
    max_queue: int = Field(default=256, ge=1)
    model_dir: str | None = None
    threads: int = Field(default=0, ge=0, description="CPU threads for local models (0: PyTorch's default)")
    max_adapters: int = Field(
        default=8, ge=1, description="LoRA adapters kept loaded per local model; the least recently used goes first"
    )


class FineTuningSettings(BaseModel):
    """Where fine-tuning jobs train: the job runner (``local`` subprocess or a ``ray`` cluster) and its options."""

    model_config = ConfigDict(extra="forbid")

    runner: str = Field(default="local", description="job runner: `local` (a subprocess) or `ray` (Ray Jobs)")
    ray_address: str | None = Field(
        default=None,
        description="Ray Jobs address of the `ray` runner (`http://head:8265`); unset: Ray's own discovery "
        "(RAY_ADDRESS, then a cluster started on this machine)",
    )
    ray_python: str = Field(
        default="python", description="the Python the `ray` runner's entrypoint runs on the cluster (lmdeck installed)"
    )
    ray_num_cpus: float = Field(default=1.0, ge=0, le=1024, description="CPUs a Ray training job reserves")
    ray_num_gpus: float = Field(default=0.0, ge=0, le=64, description="GPUs a Ray training job reserves")
    max_concurrent_jobs: int = Field(
        default=1,
        ge=1,
        le=64,
        description="training workers at once per gateway process; a job past it waits in `queued` and starts "
        "when one ends",
    )


class ModelPrice(BaseModel):
    """What an upstream model costs, in US dollars per 1M tokens (at most 6 decimals: read exactly).

    ``cached_input`` is a cache read (OpenAI's ``cached_tokens``, Anthropic's
    ``cache_read_input_tokens``); ``cache_write`` and ``cache_write_1h`` are Anthropic's cache
    writes (``cache_creation_input_tokens``) for the 5-minute and the 1-hour cache.
    """

    model_config = ConfigDict(extra="forbid")

    input: Decimal = Field(ge=0, decimal_places=6)
    output: Decimal = Field(ge=0, decimal_places=6)
    cached_input: Decimal | None = Field(
        default=None, ge=0, decimal_places=6, description="a cache read; default: the input price"
    )
    cache_write: Decimal | None = Field(
        default=None, ge=0, decimal_places=6, description="a 5-minute cache write; default: the input price"
    )
    cache_write_1h: Decimal | None = Field(
        default=None, ge=0, decimal_places=6, description="a 1-hour cache write; default: the 5-minute write price"
    )


class RateLimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, description="tokens (prompt + max_tokens) per minute")


class ConcurrencySettings(BaseModel):
    """How many requests one key, and one team, may have in flight at once (see docs/access.md).

    A stream counts as in flight and as an open stream until it ends. Beyond a limit the request
    is answered 429 at once. The counts are per gateway process.
    """

    model_config = ConfigDict(extra="forbid")

    key_in_flight: int = Field(default=64, ge=1, description="requests one key may have in flight, streams included")
    key_streams: int = Field(default=32, ge=1, description="streams one key may have open")
    team_in_flight: int = Field(default=256, ge=1, description="requests one team's keys may have in flight together")
    team_streams: int = Field(default=128, ge=1, description="streams one team's keys may have open together")


class PolicySettings(BaseModel):
    """Access control and cost governance: limits, prices and how fast changes spread."""

    model_config = ConfigDict(extra="forbid")

    refresh_interval: float = Field(
        default=5.0, gt=0, description="seconds between reloads of keys, teams and budgets changed by other processes"
    )
    rotation_grace: float = Field(default=3600.0, ge=0, description="seconds an old key keeps working after rotation")
    soft_limit: float = Field(default=0.8, gt=0, le=1, description="share of a budget that raises an alert")
    assumed_max_tokens: int = Field(
        default=4096, ge=1, description="output tokens reserved for a request that sets no max_tokens"
    )
    key_limits: RateLimitSettings = Field(
        default_factory=RateLimitSettings, description="limits of a key that sets none"
    )
    route_limits: dict[str, RateLimitSettings] = Field(default_factory=dict, description="limits per route")
    concurrency: ConcurrencySettings = Field(
        default_factory=ConcurrencySettings, description="requests and streams in flight per key and per team"
    )
    pricing: dict[str, ModelPrice] = Field(
        default_factory=dict, description="prices per upstream model, over the built-in table"
    )


class EgressSettings(BaseModel):
    """Where upstream calls may go (see :mod:`lmdeck.providers.egress`).

    A URL that a non-admin writes (a model version's ``base_url``) must name a host of the
    admin's configuration, an ``allow`` entry or, with ``allow_loopback``, this machine.
    Link-local and cloud-metadata addresses are refused in every role unless ``allow``
    names them; every connection is checked again against the address it goes to.
    """

    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(
        default_factory=list,
        description="hosts (api.example.com), subdomain wildcards (*.example.com), addresses and CIDRs (10.0.0.0/8)",
    )
    schemes: list[Literal["https", "http"]] = Field(
        default=["https", "http"], min_length=1, description="URL schemes upstreams may use"
    )
    allow_loopback: bool = Field(default=True, description="let upstreams be on this machine (development)")


class CredentialConfig(BaseModel):
    """A provider credential the admin defines and the gateway attaches to the calls that name it.

    credentials:
      openai-team-a:
        api_key: {"$secret": "openai-team-a"}
        hosts: [api.openai.com]
        teams: [search]          # team names or ids
    """

    model_config = ConfigDict(extra="forbid")

    api_key: SecretRef
    hosts: list[str] = Field(min_length=1, description="the only hosts it is sent to")
    teams: list[str] = Field(
        default_factory=list,
        description="teams (names or ids) whose versions may name it; '*' for every team; empty: admins only",
    )

    @field_validator("api_key")
    @classmethod
    def _not_own_secret(cls, value: SecretRef | None) -> SecretRef | None:
        return not_own_secret(value)


class RegistrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_interval: float = Field(default=2.0, gt=0, description="seconds between checks for changes by others")
    protected_labels: dict[str, Literal["admin", "developer"]] = Field(
        default={"production": "admin"},
        description="aliases/labels whose moves need a stronger role than developer",
    )
    render_workers: int = Field(
        default=2, ge=1, le=64, description="worker processes rendering prompt templates that have logic"
    )
    render_cpu_seconds: float = Field(
        default=1.0, gt=0, le=60, description="CPU seconds one prompt render may use before it is stopped (400)"
    )
    render_memory_mb: int = Field(
        default=256, ge=32, description="memory (MiB) a rendering worker may use beyond what it needs to start"
    )


class EvaluationSettings(BaseModel):
    """Online rules and experiments declared in the config file (validated by lmdeck.evaluation at start)."""

    model_config = ConfigDict(extra="forbid")

    online_rules: list[dict[str, Any]] = Field(default_factory=list, description="online evaluation rules")
    experiments: list[dict[str, Any]] = Field(default_factory=list, description="A/B experiments started when absent")
    annotation_queues: list[dict[str, Any]] = Field(
        default_factory=list, description="annotation queues created when absent (docs/monitoring.md)"
    )
    feedback_names: list[str] = Field(
        default_factory=lambda: ["thumbs", "rating", "score", "correct"],
        description="feedback names the lmdeck_feedback_value metric labels by name; any other is counted as `other`",
    )
    feedback_correction_max_bytes: int = Field(
        default=8192,
        ge=1,
        le=1_048_576,
        description="largest feedback `correction` (UTF-8 bytes; compact JSON when not text); past it a 400",
    )
    queue_size: int = Field(default=1000, ge=1, description="traces waiting for online scoring before drops")
    workers: int = Field(default=2, ge=1, le=64, description="background online scoring tasks")
    poll_interval: float = Field(default=2.0, gt=0, description="seconds between reloads of rules and experiments")
    ray_gateway_url: str | None = Field(
        default=None,
        description="this gateway's URL as a Ray cluster reaches it (`http://gateway:8080`); set, a run may ask "
        "for `runner: ray` (submitted to `fine_tuning.ray_address`, see docs/evaluation.md)",
    )


class AlertSettings(AlertsDeclared):
    """Alerting (see docs/monitoring.md): rules, channels and silences declared in the file are synced to
    the store when the gateway starts (and by ``lmdeck apply``); the evaluator runs every
    ``evaluation_interval_s`` seconds (None: only when ``POST /api/alerts/evaluate`` asks)."""

    evaluation_interval_s: float | None = Field(default=60.0, gt=0, description="seconds between evaluations")
    max_attempts: int = Field(default=6, ge=1, le=100, description="sends of a notification before it is dead-lettered")
    backoff_base_s: float = Field(default=2.0, gt=0, description="seconds before the first retry; doubles each time")
    backoff_max_s: float = Field(default=300.0, gt=0, description="longest wait between two sends")


class ReleaseControllerSettings(BaseModel):
    """The release controller (progressive delivery, see docs/delivery.md): how often it analyses releases."""

    model_config = ConfigDict(extra="forbid")

    analysis_tick_s: float | None = Field(
        default=5.0,
        gt=0,
        description="seconds between the release controller's analyses (null: only on POST /api/releases/analyze)",
    )
    poll_interval: float = Field(default=2.0, gt=0, description="seconds between reloads of the serving releases")


class ResponsesSettings(BaseModel):
    """Stored responses of ``POST /v1/responses`` (``store: true``)."""

    model_config = ConfigDict(extra="forbid")

    retention_days: float = Field(
        default=30.0, gt=0, description="days a stored response is kept; expired ones are purged"
    )
    purge_interval_s: float = Field(default=3600.0, gt=0, description="seconds between purges of expired responses")
    max_pending: int = Field(
        default=10_000, ge=1, description="stored responses queued for the database at most; past it one is not stored"
    )


class BatchSettings(BaseModel):
    """Files (``/v1/files``) and batches (``/v1/batches``) run by the gateway (docs/batches.md)."""

    model_config = ConfigDict(extra="forbid")

    max_file_bytes: int = Field(
        default=100 * 1024 * 1024, ge=1024, description="largest file `POST /v1/files` accepts; larger ones get a 413"
    )
    max_rows: int = Field(default=50_000, ge=1, description="request lines one batch input file may hold")
    concurrency: int = Field(default=8, ge=1, le=256, description="rows of one batch in flight at once")
    claim_ttl_s: float = Field(
        default=30.0, gt=0, description="seconds a dead process's claim on a batch lasts before another adopts it"
    )


def _vault_token_default() -> SecretRef:
    return SecretRef.model_validate({"$env": "VAULT_TOKEN"})


class VaultSettings(BaseModel):
    """Where ``{"$vault": "path#field"}`` references are read: a HashiCorp Vault KV v2 mount.

    >>> VaultSettings.model_validate({"address": "https://vault.internal:8200"}).mount
    'secret'
    """

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None, description="Vault's base URL, e.g. https://vault.internal:8200 (env VAULT_ADDR); unset: no Vault"
    )
    token: SecretRef = Field(
        default_factory=_vault_token_default, description='token sent as X-Vault-Token; an {"$env": ...} reference'
    )
    mount: str = Field(default="secret", min_length=1, description="path of the KV version 2 secrets engine")
    namespace: str | None = Field(default=None, description="Vault Enterprise namespace (env VAULT_NAMESPACE)")
    timeout: float = Field(default=5.0, gt=0, le=300, description="seconds for one read from Vault")
    cache_ttl: float = Field(
        default=300.0, ge=0, le=86400, description="seconds a secret read from Vault is used before it is read again"
    )

    @field_validator("token")
    @classmethod
    def _env_token(cls, value: SecretRef) -> SecretRef:
        if value.env is None:
            raise ValueError('vault.token is read from the environment: write {"$env": "VAULT_TOKEN"}')
        return value

    @field_validator("address")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url(value)
            if not value.startswith(("http://", "https://")):
                raise ValueError(f"vault.address {value!r} is not an http(s) URL: write e.g. https://vault:8200")
        return value

    @field_validator("mount")
    @classmethod
    def _mount(cls, value: str) -> str:
        mount = value.strip("/")
        if not mount:
            raise ValueError("vault.mount names no path: write e.g. secret")
        return mount


#: What a feature does while Redis cannot be reached: ``open`` serves the request on this process's own
#: state (limits, budgets and breakers counted per process, the cache a miss); ``closed`` refuses it
#: with a 503 (``code: shared_state_unavailable``).
RedisFailure = Literal["open", "closed"]


class RedisFailurePolicy(BaseModel):
    """The declared behaviour of each Redis-backed feature while Redis is down (see :data:`RedisFailure`)."""

    model_config = ConfigDict(extra="forbid")

    rate_limits: RedisFailure = Field(default="open", description="open: each process's own buckets apply")
    budgets: RedisFailure = Field(
        default="closed", description="closed: requests that a budget covers get a 503 rather than overspend"
    )
    breakers: RedisFailure = Field(default="open", description="open: each process's own breaker state applies")
    cache: RedisFailure = Field(default="open", description="open: a lookup is a miss and a write is skipped")


class RedisSettings(BaseModel):
    """Redis, shared by every replica: exact rate limits, budget reservations, circuit breakers, the
    response cache, and change notices (pub/sub) so a change made on one replica is seen by all at once.

    Unset ``url``: everything stays in each process (exact for one process; see docs/serving.md).

    >>> RedisSettings.model_validate({"url": "redis://127.0.0.1:6379/0"}).on_unavailable.budgets
    'closed'
    """

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        description="redis:// or rediss:// URL with the database number, e.g. redis://10.0.0.5:6379/0 "
        "(env LMDECK_REDIS_URL); put no password in it: use `password`",
    )
    password: SecretRef | None = Field(default=None, description='an {"$env": ...} or {"$vault": ...} reference')
    key_prefix: str = Field(
        default="lmdeck:", min_length=1, max_length=64, description="prefix of every key and channel lmdeck uses"
    )
    timeout: float = Field(
        default=0.25, gt=0, le=30, description="seconds one Redis command may take before the failure policy applies"
    )
    retry_interval: float = Field(
        default=1.0,
        gt=0,
        le=300,
        description="seconds after a failed command during which Redis is not tried again (requests follow "
        "the failure policy at once instead of each waiting out the timeout)",
    )
    pubsub: bool = Field(
        default=True,
        description="publish and follow change notices; off: other replicas see changes at their next poll",
    )
    on_unavailable: RedisFailurePolicy = Field(default_factory=RedisFailurePolicy)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url(value)
            if not value.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError("redis.url is not a redis:// URL: write e.g. redis://127.0.0.1:6379/0")
            if urlsplit(value).password:
                raise ValueError(
                    'redis.url holds a password: take it out and set redis.password: {"$env": "REDIS_PASSWORD"}'
                )
        return value


class ConsoleSettings(BaseModel):
    """The web console at ``/console/`` (see docs/console.md)."""

    model_config = ConfigDict(extra="forbid")

    session_ttl_s: float = Field(
        default=8 * 3600.0, gt=0, le=30 * 86400, description="seconds a console sign-in lasts before it must be renewed"
    )


class Settings(BaseModel):
    """Everything a running lmdeck needs to know.

    >>> s = Settings.model_validate({"port": 4100})
    >>> s.port
    4100
    """

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    data_dir: Path = Path(".lmdeck")
    database_url: str | None = None
    admin_key: SecretRef | None = None
    master_key: SecretRef | None = None
    log_level: str = "info"
    log_file: Path | None = Field(default=None, description="also write the log here (mode 0600)")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(
        default=32 * 1024, ge=1024, le=1024 * 1024, description="request line and headers; larger ones get a 431"
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="seconds a client has to send a request's headers (from connecting, or from the request's "
        "first byte on a kept-alive connection); slower ones get a 408 and the connection is closed",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="seconds a request body may go without a byte while lmdeck waits for it; a stalled "
        "client gets a 408 and the connection is closed",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="worker processes `lmdeck serve` runs on its port (SO_REUSEPORT); rate limits and "
        "budgets are counted per worker (docs/serving.md)",
    )
    tls_cert: Path | None = Field(
        default=None, description="PEM certificate (chain) `lmdeck serve` answers HTTPS with; needs `tls_key`"
    )
    tls_key: Path | None = Field(default=None, description="PEM private key of `tls_cert`")
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP base URL (`/v1/traces` and `/v1/metrics` appended; a URL ending in `/v1/traces` "
        "is kept for spans); unset: no OpenTelemetry export",
    )
    otlp_traces_endpoint: str | None = Field(default=None, description="OTLP/HTTP URL for spans, used as it is")
    otlp_metrics_endpoint: str | None = Field(default=None, description="OTLP/HTTP URL for metrics, used as it is")
    otlp_headers: dict[str, str] = Field(default_factory=dict, description="headers sent with every OTLP export")
    default_routes: bool = Field(default=True, description="serve the bundled `demo` and `embed` routes")
    routes: list[RouteConfig] = Field(default_factory=list)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)
    fine_tuning: FineTuningSettings = Field(
        default_factory=FineTuningSettings, description="where fine-tuning jobs train (job runner, Ray address)"
    )
    policy: PolicySettings = Field(default_factory=PolicySettings)
    plugins: dict[str, Any] = Field(default_factory=dict, description="settings for third-party plugins")
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    models: list[ModelSpec] = Field(default_factory=list, description="registered models synced by `lmdeck apply`")
    prompts: list[PromptSpec] = Field(default_factory=list, description="prompts synced by `lmdeck apply`")
    flags: list[FlagSpec] = Field(default_factory=list, description="feature flags synced by `lmdeck apply`")
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings, description="alert rules, channels, silences")
    releases: list[dict[str, Any]] = Field(
        default_factory=list, description="releases created and started when absent (validated by lmdeck.delivery)"
    )
    release_controller: ReleaseControllerSettings = Field(default_factory=ReleaseControllerSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    responses: ResponsesSettings = Field(
        default_factory=ResponsesSettings, description="stored responses of `POST /v1/responses`"
    )
    batches: BatchSettings = Field(
        default_factory=BatchSettings, description="files and batches of `/v1/files` and `/v1/batches`"
    )
    egress: EgressSettings = Field(default_factory=EgressSettings)
    guardrails: GuardrailSettings = Field(
        default_factory=GuardrailSettings, description="guardrail definitions, data policy, team and key attachments"
    )
    credentials: dict[RegistryName, CredentialConfig] = Field(
        default_factory=dict, description="provider credentials model versions may name"
    )
    console: ConsoleSettings = Field(default_factory=ConsoleSettings, description="the web console at /console/")
    vault: VaultSettings = Field(
        default_factory=VaultSettings, description='HashiCorp Vault, for {"$vault": "path#field"} references'
    )
    redis: RedisSettings = Field(
        default_factory=RedisSettings,
        description="Redis shared by replicas (limits, budgets, breakers, cache, notices)",
    )

    @field_validator("routes")
    @classmethod
    def _unique_routes(cls, routes: list[RouteConfig]) -> list[RouteConfig]:
        seen: set[str] = set()
        for route in routes:
            if route.name in seen:
                raise ValueError(f"route {route.name!r} is defined twice")
            seen.add(route.name)
        return routes

    @model_validator(mode="after")
    def _fallbacks_exist(self) -> Settings:
        names = {r.name for r in self.routes}
        for route in self.routes:
            for fb in route.fallbacks:
                if fb not in names and fb not in ("demo", "embed"):
                    raise ValueError(f"route {route.name!r} falls back to unknown route {fb!r}")
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("tls_cert", "tls_key") if self.tls_key is None else ("tls_key", "tls_cert")
            raise ValueError(
                f"{given} is set but {missing} is not: HTTPS needs both the certificate and its key "
                "(--tls-cert and --tls-key, or LMDECK_TLS_CERT and LMDECK_TLS_KEY)"
            )
        return self

    @property
    def scheme(self) -> str:
        """``https`` when ``tls_cert`` and ``tls_key`` are set, else ``http``."""
        return "https" if self.tls_cert is not None else "http"

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'lmdeck.db').as_posix()}"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def otlp_traces_url(self) -> str | None:
        """Where spans are exported: ``otlp_traces_endpoint``, else ``otlp_endpoint`` + ``/v1/traces``; None: nowhere."""
        if self.otlp_traces_endpoint:
            return self.otlp_traces_endpoint
        if not self.otlp_endpoint:
            return None
        base = self.otlp_endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else base + "/v1/traces"

    @property
    def otlp_metrics_url(self) -> str | None:
        """Where metrics are exported: ``otlp_metrics_endpoint``, else ``otlp_endpoint``'s ``/v1/metrics``."""
        if self.otlp_metrics_endpoint:
            return self.otlp_metrics_endpoint
        if not self.otlp_endpoint:
            return None
        base = self.otlp_endpoint.rstrip("/").removesuffix("/v1/traces")
        return base + "/v1/metrics"


def otlp_headers(value: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS`` read as OpenTelemetry specifies: ``k1=v1,k2=v2``, values URL-encoded.

    >>> otlp_headers("authorization=Bearer%20abc, x-tenant=red")
    {'authorization': 'Bearer abc', 'x-tenant': 'red'}
    """
    headers: dict[str, str] = {}
    for item in value.split(","):
        name, sep, raw = item.partition("=")
        if sep and name.strip():
            headers[name.strip().lower()] = unquote(raw.strip())
    return headers


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    simple = {
        "LMDECK_HOST": "host",
        "LMDECK_PORT": "port",
        "LMDECK_DATA_DIR": "data_dir",
        "LMDECK_DATABASE_URL": "database_url",
        "LMDECK_OTLP_ENDPOINT": "otlp_endpoint",
        "LMDECK_LOG_LEVEL": "log_level",
        "LMDECK_LOG_FILE": "log_file",
        "LMDECK_WORKERS": "workers",
        "LMDECK_TLS_CERT": "tls_cert",
        "LMDECK_TLS_KEY": "tls_key",
    }
    for var, field in simple.items():
        if environ.get(var):
            out[field] = environ[var]
    if not environ.get("LMDECK_OTLP_ENDPOINT") and environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        out["otlp_endpoint"] = environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
    for var, name in (
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otlp_traces_endpoint"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "otlp_metrics_endpoint"),
    ):
        if environ.get(var):
            out[name] = environ[var]
    if environ.get("OTEL_EXPORTER_OTLP_HEADERS"):
        out["otlp_headers"] = otlp_headers(environ["OTEL_EXPORTER_OTLP_HEADERS"])
    if environ.get("LMDECK_ADMIN_KEY"):
        out["admin_key"] = {"$env": "LMDECK_ADMIN_KEY"}
    if environ.get("LMDECK_MASTER_KEY"):
        out["master_key"] = {"$env": "LMDECK_MASTER_KEY"}
    if environ.get("LMDECK_LOCAL_DEVICE"):
        out.setdefault("local", {})["device"] = environ["LMDECK_LOCAL_DEVICE"]
    if environ.get("LMDECK_REDIS_URL"):
        out.setdefault("redis", {})["url"] = environ["LMDECK_REDIS_URL"]
    for var, name in (("VAULT_ADDR", "address"), ("VAULT_NAMESPACE", "namespace")):
        if environ.get(var):
            out.setdefault("vault", {})[name] = environ[var]
    return out


def forget_own_secrets(environ: MutableMapping[str, str] | None = None) -> None:
    """Drop :data:`OWN_SECRETS` from the environment once they are read, so that no later lookup or
    child process finds the plain admin or master key there."""
    env = os.environ if environ is None else environ
    for name in OWN_SECRETS:
        env.pop(name, None)
