"""The :class:`Settings` object: every section of ``lmdeck.yaml`` in one typed model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmdeck.protocol.flags import FlagSpec
from lmdeck.protocol.guardrails import GuardrailSettings
from lmdeck.protocol.registry import ModelSpec, PromptSpec, RegistryName
from lmdeck.settings.cache import CacheSettings
from lmdeck.settings.console import ConsoleSettings
from lmdeck.settings.delivery import ReleaseControllerSettings
from lmdeck.settings.endpoints import BatchSettings, ResponsesSettings
from lmdeck.settings.evaluation import EvaluationSettings
from lmdeck.settings.finetune import FineTuningSettings
from lmdeck.settings.local import LocalSettings
from lmdeck.settings.monitoring import AlertSettings
from lmdeck.settings.policy import PolicySettings
from lmdeck.settings.redis import RedisSettings
from lmdeck.settings.registry import RegistrySettings
from lmdeck.settings.routes import RouteConfig
from lmdeck.settings.secrets import SecretRef
from lmdeck.settings.tracing import TracingSettings
from lmdeck.settings.upstream import BreakerSettings, CredentialConfig, EgressSettings, RetrySettings
from lmdeck.settings.vault import VaultSettings


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
