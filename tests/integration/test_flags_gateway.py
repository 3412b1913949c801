"""Feature flags against a real ``lmdeck serve`` (on a fake upstream), driven by the CLI and the openai SDK.

One gateway for the module; the steps run as an operator would run them: flags and a prompt
arrive through ``lmdeck apply``, are flipped with ``lmdeck flags``, and the very next request
through the official openai SDK shows the new route, prompt or kill switch.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from typer.testing import CliRunner

from lmdeck.cli.main import app
from lmdeck.testing.servers import FakeUpstreamProcess, GatewayProcess, gateway_process, start_fake_upstream

pytestmark = pytest.mark.integration


def routes(fake: FakeUpstreamProcess) -> list[dict[str, Any]]:
    def target(model: str) -> dict[str, Any]:
        return {"provider": "openai", "model": model, "base_url": fake.base_url}

    return [
        {
            "name": "support",
            "targets": [target("support-v1")],
            "flags": [{"flag": "support-v2", "equals": True, "route": "support-next"}],
        },
        {"name": "support-next", "targets": [target("support-v2")]},
    ]


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstreamProcess]:
    process = start_fake_upstream(log_dir=tmp_path_factory.mktemp("fake"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def gateway(fake: FakeUpstreamProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = {"default_routes": False, "routes": routes(fake), "registry": {"poll_interval": 0.2}}
    with gateway_process(config, data_dir=tmp_path_factory.mktemp("gateway")) as gw:
        yield gw


def lmdeck(gateway: GatewayProcess, *args: str) -> str:
    env = {"LMDECK_BASE_URL": gateway.url, "LMDECK_API_KEY": gateway.admin_key}
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def ask(gateway: GatewayProcess, **body: Any) -> tuple[str, str, str]:
    """(the upstream model that answered, the answer, the request id) of one chat request."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.admin_key, max_retries=0, timeout=30)
    request_id = f"flags-{uuid.uuid4().hex}"
    body.setdefault("model", "support")
    body.setdefault("messages", [{"role": "user", "content": "where is my parcel"}])
    completion = client.chat.completions.create(**body, extra_headers={"x-request-id": request_id})
    return completion.model, completion.choices[0].message.content or "", request_id


def test_a_flag_flipped_with_the_cli_moves_the_next_request(gateway: GatewayProcess, tmp_path: Path) -> None:
    declared = {
        "flags": [{"name": "support-v2", "enabled": False, "routes": ["support"]}],
    }
    path = tmp_path / "lmdeck.yaml"
    path.write_text(yaml.safe_dump(declared))
    assert "Flag support-v2: create" in lmdeck(gateway, "apply", "-f", str(path), "--dry-run")
    lmdeck(gateway, "apply", "-f", str(path))
    assert "no changes" in lmdeck(gateway, "apply", "-f", str(path))

    assert ask(gateway)[0] == "support-v1"
    lmdeck(gateway, "flags", "enable", "support-v2")
    model, _, request_id = ask(gateway)
    assert model == "support-v2"
    trace = gateway.trace(request_id)
    assert trace["metadata"]["flags"] == {"support-v2": True} and trace["route"] == "support-next"
    lmdeck(gateway, "flags", "disable", "support-v2")
    assert ask(gateway)[0] == "support-v1"

    history = lmdeck(gateway, "flags", "history", "support-v2")
    assert [line.split()[1] for line in history.splitlines()[1:]] == ["disabled", "enabled", "created"]
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    assert 'lmdeck_flag_evaluations_total{flag="support-v2",value="true"} 1.0' in metrics
    assert 'lmdeck_flag_evaluations_total{flag="support-v2",value="false"} 2.0' in metrics


def test_a_prompt_reads_a_flag_set_live(gateway: GatewayProcess, tmp_path: Path) -> None:
    declared = {
        "prompts": [
            {
                "name": "greet",
                "versions": [
                    {
                        "version": 1,
                        "text": "{% if flags.friendly %}Hi there{% else %}Hello{% endif %} {{ name }}",
                        "variables": {"name": "string"},
                        "route": "support",
                    }
                ],
                "labels": {"production": 1},
            }
        ],
    }
    path = tmp_path / "lmdeck.yaml"
    path.write_text(yaml.safe_dump(declared))
    lmdeck(gateway, "flags", "set", "friendly", "false")
    lmdeck(gateway, "apply", "-f", str(path))
    prompt = {"prompt": {"name": "greet", "variables": {"name": "Ada"}}}
    assert ask(gateway, messages=[], extra_body=prompt)[1] == "Hello Ada"
    lmdeck(gateway, "flags", "set", "friendly", "true")
    assert ask(gateway, messages=[], extra_body=prompt)[1] == "Hi there Ada"
    assert '"value": true' in lmdeck(gateway, "flags", "evaluate", "friendly", "--json")


def test_the_kill_switch_refuses_the_route_then_restores_it(gateway: GatewayProcess) -> None:
    assert "on: its requests are refused" in lmdeck(gateway, "flags", "kill", "support")
    with pytest.raises(openai.APIStatusError) as refused:
        ask(gateway)
    assert refused.value.status_code == 503
    error = refused.value.body
    assert isinstance(error, dict) and error["code"] == "route_killed" and "kill.support" in error["message"]
    assert ask(gateway, model="support-next")[0] == "support-v2"  # other routes serve on
    lmdeck(gateway, "flags", "kill", "support", "--off")
    assert ask(gateway)[0] == "support-v1"
    assert "kill.support" in lmdeck(gateway, "flags", "list")


def test_a_whole_spec_from_a_file_then_get_evaluate_and_delete(gateway: GatewayProcess, tmp_path: Path) -> None:
    spec = {
        "name": "tone",
        "type": "string",
        "value": "warm",
        "default": "plain",
        "rules": [{"users": ["ada"], "value": "terse"}, {"headers": {"x-beta": "1"}, "value": "bold"}],
    }
    path = tmp_path / "tone.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert "flag tone: version 1" in lmdeck(gateway, "flags", "set", "-f", str(path))
    assert '"rules"' in lmdeck(gateway, "flags", "get", "tone")
    assert "terse" in lmdeck(gateway, "flags", "evaluate", "tone", "--user", "ada")
    assert "bold" in lmdeck(gateway, "flags", "evaluate", "tone", "--header", "x-beta=1")
    assert "fallthrough" in lmdeck(gateway, "flags", "evaluate", "tone", "--user", "bob")
    lmdeck(gateway, "flags", "delete", "tone")
    env = {"LMDECK_BASE_URL": gateway.url, "LMDECK_API_KEY": gateway.admin_key}
    missing = CliRunner().invoke(app, ["flags", "get", "tone"], env=env)
    assert missing.exit_code == 1 and "no flag 'tone'" in missing.output
