"""``lmdeck apply`` and the registry command groups against a real ``lmdeck serve`` and a fake upstream.

One gateway for the module: the steps run in order, as an operator would run them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from typer.testing import CliRunner

from lmdeck.cli.main import app
from lmdeck.testing.servers import FakeUpstreamProcess, GatewayProcess, gateway_process, start_fake_upstream

pytestmark = pytest.mark.integration


def declared(fake: FakeUpstreamProcess, production: int = 1) -> dict[str, Any]:
    return {
        "default_routes": False,
        "routes": [{"name": "support", "targets": ["registry:support-bot@production"]}],
        "models": [
            {
                "name": "support-bot",
                "description": "answers support tickets",
                "versions": [
                    {"version": 1, "provider": "openai", "model": "upstream-v1", "base_url": fake.base_url},
                    {
                        "version": 2,
                        "provider": "openai",
                        "model": "upstream-v2",
                        "base_url": fake.base_url,
                        "lineage": {"parent_version": 1},
                        "metrics": {"accuracy": 0.93},
                    },
                ],
                "aliases": {"production": production},
            }
        ],
        "prompts": [
            {
                "name": "greet",
                "versions": [
                    {"version": 1, "text": "Hello {{ name }}", "variables": {"name": "string"}, "route": "support"},
                    {
                        "version": 2,
                        "text": "Hi {{ name }}!",
                        "variables": {"name": "string"},
                        "route": "support",
                        "commit_message": "friendlier",
                    },
                ],
                "labels": {"production": 1},
            }
        ],
    }


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstreamProcess]:
    process = start_fake_upstream(log_dir=tmp_path_factory.mktemp("fake"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def gateway(fake: FakeUpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    # Started with only the route: models and prompts arrive through `lmdeck apply`.
    config = {"default_routes": False, "routes": declared(fake)["routes"], "registry": {"poll_interval": 0.2}}
    with gateway_process(config, data_dir=tmp_path_factory.mktemp("gateway")) as gw:
        yield gw


def lmdeck(gateway: GatewayProcess, *args: str) -> Any:
    env = {"LMDECK_BASE_URL": gateway.url, "LMDECK_API_KEY": gateway.admin_key}
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result


def served_model(gateway: GatewayProcess, **extra: Any) -> str:
    client = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.admin_key, max_retries=0)
    body: dict[str, Any] = {"model": "support", "messages": [{"role": "user", "content": "where is my parcel?"}]}
    body.update(extra)
    completion = client.chat.completions.create(**body)
    return completion.model


def test_apply_plan_then_apply_then_no_changes(
    gateway: GatewayProcess, fake: FakeUpstreamProcess, tmp_path: Path
) -> None:
    path = tmp_path / "lmdeck.yaml"
    path.write_text(yaml.safe_dump(declared(fake)))
    dry = lmdeck(gateway, "apply", "-f", str(path), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "+ model version support-bot v2" in dry.output and "(needs admin)" in dry.output
    assert "dry run: nothing applied" in dry.output
    assert "+ route" not in dry.output  # the route is already live from the gateway's own config
    assert json.loads(lmdeck(gateway, "models", "list", "--json").output) == []

    applied = lmdeck(gateway, "apply", "-f", str(path))
    assert applied.exit_code == 0 and "applied: " in applied.output, applied.output
    again = lmdeck(gateway, "apply", "-f", str(path))
    assert again.exit_code == 0 and again.output.strip() == "no changes"
    assert served_model(gateway) == "upstream-v1"


def test_alias_move_and_rollback_from_the_shell(gateway: GatewayProcess) -> None:
    moved = lmdeck(gateway, "models", "alias", "support-bot", "production", "2", "--reason", "v2 is better")
    assert moved.exit_code == 0 and "v1 → v2" in moved.output, moved.output
    assert served_model(gateway) == "upstream-v2"
    back = lmdeck(gateway, "models", "rollback", "support-bot", "--alias", "production", "--reason", "complaints")
    assert back.exit_code == 0 and "v2 → v1 (rolled back)" in back.output
    assert served_model(gateway) == "upstream-v1"
    history = json.loads(lmdeck(gateway, "models", "history", "support-bot", "--json").output)
    assert [(h["action"], h["from_version"], h["to_version"], h["reason"]) for h in history[:2]] == [
        ("rollback", 2, 1, "complaints"),
        ("move", 1, 2, "v2 is better"),
    ]
    table = lmdeck(gateway, "models", "history", "support-bot").output
    assert "rollback" in table and "complaints" in table
    shown = lmdeck(gateway, "models", "show", "support-bot").output
    assert "accuracy=0.93" in shown and "parent_version=1" in shown
    missing = lmdeck(gateway, "models", "alias", "nobody", "production", "1")
    assert missing.exit_code == 1 and "no model 'nobody'" in missing.output


def test_prompts_from_the_shell(gateway: GatewayProcess) -> None:
    assert lmdeck(gateway, "prompts", "render", "greet", "--var", "name=Ada").output.strip() == "Hello Ada"
    diff = lmdeck(gateway, "prompts", "diff", "greet", "1", "2").output
    assert "-Hello {{ name }}" in diff and "+Hi {{ name }}!" in diff and "commit_message" in diff
    moved = lmdeck(gateway, "prompts", "label", "greet", "production", "2")
    assert moved.exit_code == 0
    assert lmdeck(gateway, "prompts", "render", "greet", "--var", "name=Ada").output.strip() == "Hi Ada!"
    bad = lmdeck(gateway, "prompts", "render", "greet")
    assert bad.exit_code == 1 and "missing variable: name" in bad.output
    created = lmdeck(gateway, "prompts", "create", "bye", "--text", "Bye {{ who }}", "--var", "who", "-m", "first")
    assert created.exit_code == 0 and created.output.startswith("bye v1"), created.output
    listed = lmdeck(gateway, "prompts", "list").output
    assert "greet" in listed and "production=v2" in listed


def test_datasets_from_traces_and_files(gateway: GatewayProcess, tmp_path: Path) -> None:
    for _ in range(3):
        served_model(gateway)
    deadline = time.monotonic() + 120  # generous: a loaded machine only makes the wait longer
    while True:  # traces reach the store from the spool in the background
        made = lmdeck(gateway, "datasets", "from-traces", "tickets", "--filter", "route=support status=ok")
        if made.exit_code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert made.exit_code == 0 and "tickets v1" in made.output, made.output
    rows = [json.loads(line) for line in lmdeck(gateway, "datasets", "rows", "tickets", "1").output.splitlines()]
    assert rows and all(r["trace_id"] for r in rows)
    assert rows[0]["input"]["messages"][0]["content"] == "where is my parcel?"
    path = tmp_path / "evals.jsonl"
    path.write_text('{"input": "2+2", "expected": "4"}\n')
    first = lmdeck(gateway, "datasets", "create", "evals", "-f", str(path))
    second = lmdeck(gateway, "datasets", "create", "evals", "-f", str(path))
    assert "new version" in first.output and "same rows as an existing version" in second.output
    assert "evals" in lmdeck(gateway, "datasets", "list").output


def test_apply_refuses_an_invalid_file_with_its_line(gateway: GatewayProcess, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - name: x\n    versions:\n      - version: 1\n        provider: openai\n")
    result = lmdeck(gateway, "apply", "-f", str(path))
    assert result.exit_code == 2 and "line 4" in result.output
