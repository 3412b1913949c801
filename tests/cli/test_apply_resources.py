"""``lmdeck apply``'s resource kinds (RetentionPolicy, AnnotationQueue): planned against what the gateway
holds, and a bad declaration is a file error before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from lmdeck.cli.apply_resources import ANNOTATION_QUEUES, RETENTION_POLICIES
from lmdeck.cli.main import app
from lmdeck.settings import Settings


class HeldResources:
    """Stands in for the SDK client: answers the listing with ``held`` and records PUTs."""

    def __init__(self, held: list[dict[str, Any]]) -> None:
        self.held = held
        self.puts: list[tuple[str, Any]] = []

    def get(self, path: str) -> dict[str, Any]:
        return {"data": self.held}

    def put(self, path: str, *, json: Any = None) -> Any:
        self.puts.append((path, json))
        return {}


def test_retention_policies_are_planned_against_the_stored_ones() -> None:
    settings = Settings.model_validate(
        {
            "tracing": {
                "retention": {
                    "policies": [
                        {"name": "same", "team": "a", "body_days": 3},
                        {"name": "changed", "route": "r", "trace_days": 9},
                        {"name": "new", "team": "b", "route": "r", "trace_days": 5},
                        {"name": "from-config", "team": "c", "body_days": 1},
                    ]
                }
            }
        }
    )
    held = HeldResources(
        [
            {"name": "same", "team": "a", "route": None, "body_days": 3, "trace_days": None, "source": "api"},
            {"name": "changed", "team": None, "route": "r", "body_days": None, "trace_days": 4, "source": "api"},
            {"name": "from-config", "team": "c", "route": None, "body_days": 1, "trace_days": None, "source": "config"},
        ]
    )
    changes = RETENTION_POLICIES.plan(held, settings)  # type: ignore[arg-type]
    assert [c.description for c in changes] == [
        "RetentionPolicy changed: update",
        "RetentionPolicy new: create",
        "RetentionPolicy from-config: create",  # the config file's is stored through the API
    ]
    for change in changes:
        change.apply(held)  # type: ignore[arg-type]
    assert [path for path, _ in held.puts] == [
        "/api/retention/policies/changed",
        "/api/retention/policies/new",
        "/api/retention/policies/from-config",
    ]
    assert ANNOTATION_QUEUES.declared(settings) is False


def test_a_bad_declared_queue_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "lmdeck.yaml"
    path.write_text(yaml.safe_dump({"evaluation": {"annotation_queues": [{"name": "q", "colour": "red"}]}}))
    # Nothing listens there: the file is refused before any request.
    env = {"LMDECK_BASE_URL": "http://127.0.0.1:9", "LMDECK_API_KEY": "sk-unused"}
    result = CliRunner().invoke(app, ["apply", "-f", str(path)], env=env)
    assert result.exit_code == 2 and "colour" in result.output
