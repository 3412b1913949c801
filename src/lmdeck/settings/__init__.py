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

from lmdeck.settings.cache import CacheConfig, CacheSettings, SemanticCacheConfig
from lmdeck.settings.console import ConsoleSettings
from lmdeck.settings.delivery import ReleaseControllerSettings
from lmdeck.settings.endpoints import BatchSettings, ResponsesSettings
from lmdeck.settings.environment import ENV_PREFIX, ENVIRONMENT, env_overrides, forget_own_secrets, otlp_headers
from lmdeck.settings.evaluation import EvaluationSettings
from lmdeck.settings.finetune import FineTuningSettings
from lmdeck.settings.local import LocalSettings
from lmdeck.settings.monitoring import AlertSettings
from lmdeck.settings.policy import ConcurrencySettings, ModelPrice, PolicySettings, RateLimitSettings
from lmdeck.settings.redis import RedisFailure, RedisFailurePolicy, RedisSettings
from lmdeck.settings.registry import RegistrySettings
from lmdeck.settings.root import Settings
from lmdeck.settings.routes import (
    MAX_TIMEOUT,
    CascadeCheckConfig,
    CascadeConfig,
    CompressionConfig,
    LearnedRouterConfig,
    RouteConfig,
    RouteFlagRule,
    StreamCommitConfig,
    TargetConfig,
)
from lmdeck.settings.secrets import OWN_SECRETS, ConfigError, SecretRef, not_own_secret
from lmdeck.settings.tracing import TraceRetentionSettings, TracingSettings
from lmdeck.settings.upstream import BreakerSettings, CredentialConfig, EgressSettings, RetrySettings
from lmdeck.settings.vault import VaultSettings

__all__ = [
    "ENVIRONMENT",
    "ENV_PREFIX",
    "MAX_TIMEOUT",
    "OWN_SECRETS",
    "AlertSettings",
    "BatchSettings",
    "BreakerSettings",
    "CacheConfig",
    "CacheSettings",
    "CascadeCheckConfig",
    "CascadeConfig",
    "CompressionConfig",
    "ConcurrencySettings",
    "ConfigError",
    "ConsoleSettings",
    "CredentialConfig",
    "EgressSettings",
    "EvaluationSettings",
    "FineTuningSettings",
    "LearnedRouterConfig",
    "LocalSettings",
    "ModelPrice",
    "PolicySettings",
    "RateLimitSettings",
    "RedisFailure",
    "RedisFailurePolicy",
    "RedisSettings",
    "RegistrySettings",
    "ReleaseControllerSettings",
    "ResponsesSettings",
    "RetrySettings",
    "RouteConfig",
    "RouteFlagRule",
    "SecretRef",
    "SemanticCacheConfig",
    "Settings",
    "StreamCommitConfig",
    "TargetConfig",
    "TraceRetentionSettings",
    "TracingSettings",
    "VaultSettings",
    "env_overrides",
    "forget_own_secrets",
    "not_own_secret",
    "otlp_headers",
]
