"""The Dockerfile and docker-compose.yml, read as text and YAML: what each promises matches what lmdeck serves.

No image is built here (see docs/deployment.md); these checks keep the files in step with the code:
the health route the HEALTHCHECK asks for exists, the compose file's mounts point at files in the
repository, the shipped Grafana dashboard is the one Grafana loads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from lmdeck.app.routes.health import router as health
from lmdeck.settings import ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (keyword, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_the_image_is_multi_stage_slim_and_runs_as_a_non_root_user() -> None:
    steps = instructions()
    froms = [rest for keyword, rest in steps if keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in steps
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert ("COPY", "--from=builder /opt/lmdeck /opt/lmdeck") in final


def test_extras_are_a_build_argument_and_the_lock_pins_the_install() -> None:
    steps = instructions()
    assert ("ARG", "EXTRAS=postgres") in steps
    install = [rest for keyword, rest in steps if keyword == "RUN" and "pip install" in rest]
    assert install and "--constraint requirements.lock" in install[0] and "${EXTRAS" in install[0]


def test_data_dir_volume_port_healthcheck_and_entrypoint() -> None:
    final = dict(instructions())  # the last of each keyword
    assert "LMDECK_DATA_DIR=/data" in final["ENV"] and "LMDECK_DATA_DIR" in ENVIRONMENT
    assert final["VOLUME"] == '["/data"]'
    assert final["EXPOSE"] == "4000"
    served = {route.path for route in health.routes}  # type: ignore[attr-defined]
    asked = re.findall(r"(/health/\w+)", final["HEALTHCHECK"])
    assert asked and set(asked) <= served
    assert final["ENTRYPOINT"] == '["lmdeck", "serve", "--host", "0.0.0.0"]'


def test_compose_runs_two_lmdeck_instances_on_one_postgres_and_one_redis() -> None:
    services = compose()["services"]
    instances = [name for name in services if name.startswith("lmdeck-")]
    assert len(instances) == 2
    volumes = set()
    for name in instances:
        service = services[name]
        env = service["environment"]
        assert (
            env["LMDECK_DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["LMDECK_DATABASE_URL"]
        )
        for secret in ("LMDECK_ADMIN_KEY", "LMDECK_MASTER_KEY"):
            assert secret in ENVIRONMENT and env[secret].startswith("${" + secret + ":?")
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "LMDECK_REDIS_URL" in ENVIRONMENT and env["LMDECK_REDIS_URL"] == "redis://redis:6379/0"
        volumes.add(service["volumes"][0].split(":")[0])
    assert len(volumes) == 2, "each instance keeps its own data directory"
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["redis"]
    # Bounded, and when full it evicts only keys that carry an expiry (docs/deployment.md says what that costs).
    assert "volatile-lru" in services["redis"]["command"]


def test_monitoring_is_a_profile_with_the_dashboard_lmdeck_ships() -> None:
    services = compose()["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
    mounts = [v.split(":") for v in services["prometheus"]["volumes"] + services["grafana"]["volumes"]]
    for source, *_ in mounts:
        assert (ROOT / source).exists(), f"docker-compose.yml mounts {source}, which is not in the repository"
    assert ["./src/lmdeck/monitoring/grafana/lmdeck.json", "/var/lib/grafana/dashboards/lmdeck.json", "ro"] in mounts
    scrape = yaml.safe_load((ROOT / "deploy/compose/prometheus/prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics"
    instances = sorted(name for name in services if name.startswith("lmdeck-"))
    assert sorted(t.split(":")[0] for t in scrape["static_configs"][0]["targets"]) == instances
