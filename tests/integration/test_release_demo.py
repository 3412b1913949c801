"""The release demo, fast, through a real ``lmdeck serve`` (fake upstreams and the bundled demo model).

``scripts/demo_release.py --fast`` runs three releases and reports them: A (a better prompt version for
the demo model) passes shadow, climbs every step and is promoted, moving the prompt's label; B (a
candidate route failing a fifth of its requests) is rolled back within two analysis intervals; C (mixed
evidence) holds, then aborts at its deadline. Each decision is in the release's history and the audit
log with its numbers.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo_release.py"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("demo_release", SCRIPT)
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    out = tmp_path_factory.mktemp("demo") / "report.json"
    code = demo.main(["--fast", "--report", str(out)])
    found: dict[str, Any] = json.loads(out.read_text())
    assert code == 0, found["problems"]
    return found


def actions(release: dict[str, Any]) -> list[str]:
    return [e["action"] for e in release["history"]]


def test_a_better_prompt_passes_shadow_climbs_every_step_and_moves_the_label(report: dict[str, Any]) -> None:
    release = report["A"]["release"]
    steps = release["spec"]["strategy"]["steps"]
    assert release["state"] == "promoted"
    assert actions(release) == ["started", "shadow_passed", *["step"] * (len(steps) - 1), "promoted"]
    shadow = release["history"][1]["evidence"]["shadow"]
    assert shadow["decision"] == "pass" and shadow["wins"] > shadow["losses"]
    for event in release["history"][2:]:
        score = next(m for m in event["evidence"]["analysis"]["metrics"] if m["name"] == "score:shout")
        assert score["verdict"] == "pass" and score["candidate"] > score["baseline"]
    deployment = release["history"][-1]["evidence"]["deployment"]
    assert [(m["name"], m["label"], m["to_version"]) for m in deployment] == [("shout", "production", 2)]
    assert report["A"]["prompt"]["labels"]["production"] == 2


def test_a_failing_target_is_rolled_back_within_two_intervals(report: dict[str, Any]) -> None:
    release = report["B"]["release"]
    assert release["state"] == "rolled_back"
    rolled = [i["interval"] for i in report["B"]["intervals"] if i["decision"] == "rollback"]
    assert rolled and rolled[0] <= 2
    assert "error_rate" in release["reason"]
    # Every answer named its variant, failed ones too.
    traffic = report["B"]["intervals"][0]["traffic"]
    assert all(key.startswith("flaky-target=") for key in traffic), traffic


def test_mixed_evidence_holds_then_aborts_at_the_deadline(report: dict[str, Any]) -> None:
    release = report["C"]["release"]
    assert release["state"] == "aborted"
    assert report["C"]["decisions"][-1] == "abort" and "hold" in report["C"]["decisions"]
    held = next(e for e in release["history"] if e["action"] == "held")
    verdicts = {m["name"]: m["verdict"] for m in held["evidence"]["analysis"]["metrics"]}
    assert verdicts["error_rate"] == "inconclusive"
    assert "deadline" in release["reason"]


def test_the_audit_log_holds_every_decision_with_its_numbers(report: dict[str, Any]) -> None:
    audit = report["audit"]
    assert [e["action"] for e in audit["flaky-target"]] == [
        "release.created",
        "release.started",
        "release.rolled_back",
    ]
    promoted = next(e for e in audit["shout-v2"] if e["action"] == "release.promoted")
    assert promoted["actor"] == "system:release-controller"
    assert promoted["after"]["evidence"]["analysis"]["metrics"][0]["candidate_n"] >= 1
    assert "release.held" in [e["action"] for e in audit["mixed"]]
    assert any(line.startswith("lmdeck_release_requests_total{") for line in report["metrics"])
