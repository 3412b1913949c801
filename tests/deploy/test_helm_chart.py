"""The Helm chart ``deploy/helm/lmdeck``: linted and rendered by Helm's own engine, checked against Kubernetes' schemas.

Helm runs as a library (``helm_python``, Helm's Go SDK behind a C ABI), so no cluster and no ``helm``
binary are needed. It runs in a child process, so that the Go runtime it starts never lives in the
test process (where other tests fork). Each rendered manifest is validated (strict: unknown fields fail) against the
OpenAPI schemas of the oldest and newest Kubernetes versions ``kubernetes_validate`` ships for the
range we name, and then read for what lmdeck needs: probes on its health routes, a non-root
pod, secrets only through Secret references.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from lmdeck.settings import ENVIRONMENT

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "lmdeck"
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
#: Kinds outside Kubernetes' own schemas (CRDs), checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor"}

EVERYTHING_ON: dict[str, Any] = {
    "ingress": {"enabled": True, "className": "nginx", "tls": [{"secretName": "t", "hosts": ["lmdeck.example.com"]}]},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
    "config": {"default_routes": False, "vault": {"address": "https://vault.internal:8200"}},
    "extraEnv": [{"name": "VAULT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "vault", "key": "token"}}}],
    "imagePullSecrets": [{"name": "registry"}],
    "redis": {"url": "redis://redis-master.redis:6379/0"},
}
HTTPS_IN_POD: dict[str, Any] = {
    "tls": {"secretName": "lmdeck-tls"},
    "serviceMonitor": {"enabled": True, "tlsConfig": {"ca": {"secret": {"name": "ca", "key": "ca.crt"}}}},
}
SINGLE_SQLITE: dict[str, Any] = {
    "replicaCount": 1,
    "autoscaling": {"enabled": False},
    "database": {"secretName": ""},
}


HELM = """
import json, sys
import helm_python as helm
chart_dir, op, values = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if op == "lint":
    print(json.dumps(helm.lint(chart_dir)))
else:
    with helm.Chart.load(chart_dir) as chart:
        print(json.dumps(chart.render(values, name="demo", namespace="llm")))
"""


@functools.cache
def helm(op: str, values: str = "{}") -> Any:
    """``helm lint`` (op ``lint``) or ``helm template`` (op ``render``) of the chart, run in a child process."""
    done = subprocess.run(
        [sys.executable, "-c", HELM, str(CHART), op, values], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def render(values: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The chart's manifests as objects, and its NOTES.txt."""
    files: dict[str, str] = helm("render", json.dumps(values, sort_keys=True))
    docs: list[dict[str, Any]] = []
    for name, text in sorted(files.items()):
        if name.endswith(".yaml"):
            docs += [doc for doc in yaml.safe_load_all(text) if doc]
    return docs, files.get("lmdeck/templates/NOTES.txt", "")


def kinds(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in docs}


def test_helm_lint_finds_no_error_or_warning() -> None:
    result = helm("lint")
    assert result["errors"] == []
    # severity: 1 info (such as "icon is recommended"), 2 warning, 4 error
    assert [m for m in result["messages"] if m["severity"] > 1] == []


@pytest.mark.parametrize(
    "values", [{}, EVERYTHING_ON, SINGLE_SQLITE, HTTPS_IN_POD], ids=["defaults", "everything", "single", "https"]
)
def test_every_manifest_is_valid_for_kubernetes(values: dict[str, Any]) -> None:
    docs, _ = render(values)
    assert docs
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_defaults_render_a_scaled_deployment_with_its_service_hpa_and_pdb() -> None:
    found = kinds(render({})[0])
    assert set(found) == {"Deployment", "Service", "ServiceAccount", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    assert "replicas" not in found["Deployment"]["spec"]  # the HPA owns the count
    hpa = found["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == found["Deployment"]["metadata"]["name"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    selector = found["Deployment"]["spec"]["selector"]["matchLabels"]
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    assert found["Service"]["spec"]["selector"] == selector


def test_probes_ask_the_health_routes_lmdeck_serves() -> None:
    from lmdeck.app.routes.health import router

    served = {route.path for route in router.routes}  # type: ignore[attr-defined]
    container = kinds(render({})[0])["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in served
        assert container[probe]["httpGet"]["port"] == "http"
        assert container[probe]["httpGet"]["scheme"] == "HTTP"
    assert container["ports"] == [{"name": "http", "containerPort": 4000, "protocol": "TCP"}]


def test_https_in_the_pod_mounts_the_certificate_and_probes_and_scrapes_over_https() -> None:
    found = kinds(render(HTTPS_IN_POD)[0])
    pod = found["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert {"LMDECK_TLS_CERT", "LMDECK_TLS_KEY"} <= set(ENVIRONMENT)
    assert env["LMDECK_TLS_CERT"] == "/etc/lmdeck-tls/tls.crt" and env["LMDECK_TLS_KEY"] == "/etc/lmdeck-tls/tls.key"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["tls"] == {"name": "tls", "mountPath": "/etc/lmdeck-tls", "readOnly": True}
    assert {"name": "tls", "secret": {"secretName": "lmdeck-tls"}} in pod["volumes"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    endpoint = found["ServiceMonitor"]["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https" and endpoint["tlsConfig"] == HTTPS_IN_POD["serviceMonitor"]["tlsConfig"]


def test_the_pod_runs_as_a_non_root_user_with_no_privileges() -> None:
    pod = kinds(render({})[0])["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


def test_secrets_come_only_from_secret_references_under_the_names_lmdeck_reads() -> None:
    container = kinds(render({})[0])["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    for name, key in (
        ("LMDECK_ADMIN_KEY", "admin-key"),
        ("LMDECK_MASTER_KEY", "master-key"),
        ("LMDECK_DATABASE_URL", "database-url"),
    ):
        assert name in ENVIRONMENT
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "lmdeck", "key": key}
    assert set(env) - {"LMDECK_CONFIG"} <= set(ENVIRONMENT), "the chart sets a variable lmdeck does not read"


def test_a_single_replica_without_a_database_gets_no_pdb_and_a_warning() -> None:
    docs, notes = render(SINGLE_SQLITE)
    found = kinds(docs)
    assert "PodDisruptionBudget" not in found and "HorizontalPodAutoscaler" not in found
    assert found["Deployment"]["spec"]["replicas"] == 1
    env = {item["name"] for item in found["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "LMDECK_DATABASE_URL" not in env
    assert "WARNING: database.secretName is empty" in notes


def test_config_ingress_and_service_monitor_when_asked_for() -> None:
    docs, notes = render(EVERYTHING_ON)
    found = kinds(docs)
    config = yaml.safe_load(found["ConfigMap"]["data"]["lmdeck.yaml"])
    assert config == EVERYTHING_ON["config"]
    pod = found["Deployment"]["spec"]["template"]["spec"]
    env = {item["name"]: item for item in pod["containers"][0]["env"]}
    assert env["LMDECK_CONFIG"]["value"] == "/etc/lmdeck/lmdeck.yaml"
    assert env["VAULT_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "vault", "key": "token"}
    assert env["LMDECK_REDIS_URL"]["value"] == "redis://redis-master.redis:6379/0"
    rule = found["Ingress"]["spec"]["rules"][0]
    assert rule["host"] == "lmdeck.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == found["Service"]["metadata"]["name"]
    monitor = found["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert monitor["spec"]["selector"]["matchLabels"] == found["Service"]["spec"]["selector"]
    assert "https://lmdeck.example.com" in notes
