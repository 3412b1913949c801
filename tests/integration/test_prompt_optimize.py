"""Prompt optimization against a real ``lmdeck serve`` and the bundled demo model, from the command line.

The demo model was trained on bare questions: a system message throws it off ("Reply in French."
takes held-out additions from 100% to under 10%), so the search's ``bare`` rewrite, which drops the
instruction, wins and is registered with its scores. A prompt already at 100% cannot be beaten (a
candidate must have a higher mean), so nothing is registered.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmdeck.cli.main import app as cli
from lmdeck.sdk import Client
from lmdeck.testing.servers import GatewayProcess, gateway_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

skills = pytest.importorskip("lmdeck.local.skills", reason="the local engine is not installed")
demo_model = pytest.importorskip("lmdeck.local.demo_model")
if not (demo_model.DEMO_MODEL_DIR / "model.safetensors").exists():
    pytest.skip("the demo model checkpoint is not built yet", allow_module_level=True)

QUESTION = {"role": "user", "content": "What is {{a}} + {{b}}?"}
VARIABLES = {"a": "integer", "b": "integer"}


def additions(n: int, seed: int = 5) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows: dict[str, dict[str, object]] = {}
    while len(rows) < n:
        _, a, b = skills.SKILLS["add"].sample(rng, "heldout").key.split(":")
        rows[f"{a}:{b}"] = {"input": {"a": int(a), "b": int(b)}, "expected": str(int(a) + int(b))}
    return list(rows.values())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    data_dir: Path = tmp_path_factory.mktemp("optimize")
    with gateway_process({}, data_dir=data_dir, timeout=120) as gw:
        with Client(gw.url, gw.admin_key, timeout=120) as client:
            client.post("/api/registry/datasets/add/versions", json={"rows": additions(12)})
            for name, messages in (
                ("adder-fr", [{"role": "system", "content": "Reply in French."}, QUESTION]),
                ("adder", [QUESTION]),
            ):
                client.post("/api/registry/prompts", json={"name": name})
                client.post(
                    f"/api/registry/prompts/{name}/versions", json={"messages": messages, "variables": VARIABLES}
                )
                client.put(f"/api/registry/prompts/{name}/labels/production", json={"version": 1})
        yield gw


def optimize(gateway: GatewayProcess, monkeypatch: pytest.MonkeyPatch, prompt: str) -> str:
    monkeypatch.setenv("LMDECK_BASE_URL", gateway.url)
    monkeypatch.setenv("LMDECK_API_KEY", gateway.admin_key)
    args = ["prompts", "optimize", prompt, "-d", "add@1", "-e", "numeric", "-r", "demo", "--candidates", "2"]
    args += ["--demos", "0", "--seed", "0", "--max-tokens", "26", "-c", "8", "--follow"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + gateway.log()
    return result.output


def test_a_winning_candidate_is_registered_with_its_scores(
    gateway: GatewayProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = optimize(gateway, monkeypatch, "adder-fr@production")
    print(output)
    assert "registered adder-fr v2 (candidate 1)" in output
    with Client(gateway.url, gateway.admin_key, timeout=120) as client:
        record = client.prompts.optimizations("adder-fr")[0]
        result = record["result"]
        assert record["status"] == "succeeded" and result["heldout_rows"] == 6
        assert result["candidates"][0]["instruction"]["source"] == "bare"
        assert result["candidates"][0]["mean"] > result["baseline"]["mean"]
        delta = result["comparison"]["evaluators"]["numeric"]
        assert delta["mean_b"] > delta["mean_a"] and delta["method"].startswith("mcnemar")
        version = client.prompts.version("adder-fr", 2)
        assert version.spec.messages == [QUESTION]
        assert f"prompt optimization {record['id']}" in (version.spec.commit_message or "")
        assert "numeric" in (version.spec.commit_message or "")
        # The label did not move: the operator decides when the new version serves.
        assert client.prompts.show("adder-fr")["labels"]["production"] == 1


def test_nothing_is_registered_when_no_candidate_wins(gateway: GatewayProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    output = optimize(gateway, monkeypatch, "adder@production")
    print(output)
    assert "nothing registered" in output
    with Client(gateway.url, gateway.admin_key, timeout=120) as client:
        record = client.prompts.optimizations("adder")[0]
        assert record["result"]["registered"] is None and record["result"]["winner"] is None
        assert record["result"]["baseline"]["mean"] == 1.0
        assert [v["version"] for v in client.prompts.show("adder")["versions"]] == [1]
