"""The environment variables lmdeck reads (:data:`ENVIRONMENT`), how they override the file
(:func:`env_overrides`), and dropping lmdeck's own secrets once read (:func:`forget_own_secrets`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import unquote

from lmdeck.settings.secrets import OWN_SECRETS

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
