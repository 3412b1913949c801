"""Acceptance: held-out arithmetic through the bundled demo model with two prompt versions.

A real ``lmdeck serve`` (zero configuration: the ``demo`` route is the bundled model),
driven with the ``lmdeck eval`` command line: the prompt the model was trained on beats an
unfamiliar wording, the comparison gives the difference with its p-value, and a gate fails
the worse prompt.
"""

from __future__ import annotations

import random
import re
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

TRAINED = "What is {{a}} + {{b}}?"
#: Same question, in words the demo model never saw during training.
UNFAMILIAR = "Tell me, dear friend, the total you get when {{a}} joins {{b}}"
ROWS = 40


def heldout_additions(n: int, seed: int = 11) -> list[dict[str, object]]:
    """``n`` distinct addition items from the held-out split (never trained on)."""
    rng = random.Random(seed)
    rows: dict[str, dict[str, object]] = {}
    while len(rows) < n:
        example = skills.SKILLS["add"].sample(rng, "heldout")
        _, a, b = example.key.split(":")
        rows[example.key] = {"input": {"a": int(a), "b": int(b)}, "expected": str(int(a) + int(b))}
    return list(rows.values())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    data_dir: Path = tmp_path_factory.mktemp("demo-eval")
    with gateway_process({}, data_dir=data_dir, timeout=120) as gw:
        yield gw


def test_two_prompt_versions_on_the_demo_model(gateway: GatewayProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    with Client(gateway.url, gateway.admin_key, timeout=120) as client:
        client.post("/api/registry/prompts", json={"name": "adder"})
        for text in (TRAINED, UNFAMILIAR):
            spec = {"messages": [{"role": "user", "content": text}], "variables": {"a": "integer", "b": "integer"}}
            client.post("/api/registry/prompts/adder/versions", json=spec)
        client.post("/api/registry/datasets/heldout-add/versions", json={"rows": heldout_additions(ROWS)})
    monkeypatch.setenv("LMDECK_BASE_URL", gateway.url)
    monkeypatch.setenv("LMDECK_API_KEY", gateway.admin_key)
    runner = CliRunner()
    # The model shows its working ("8+7=15, 4+2+1=7, so 75"): `numeric` reads the last number;
    # `close` also accepts near misses, which keeps the comparison meaningful for a weaker checkpoint.
    evaluators = ["--evaluators", "numeric", "-e", "close=numeric:abs_tol=10"]
    common = ["eval", "run", "-d", "heldout-add@1", "-r", "demo", *evaluators, "-c", "16", "--max-tokens", "26"]

    trained = runner.invoke(cli, [*common, "-p", "adder@1", "--gate", "close>=0.5"])
    assert trained.exit_code == 0, trained.output + gateway.log()
    trained_id = re.search(r"run (run_\w+)", trained.output).group(1)  # type: ignore[union-attr]

    # The gate fails the worse prompt: the run command exits 1.
    unfamiliar = runner.invoke(cli, [*common, "-p", "adder@2", "--gate", "close>=0.5"])
    assert unfamiliar.exit_code == 1, unfamiliar.output
    assert "FAIL close>=0.5" in unfamiliar.output
    unfamiliar_id = re.search(r"run (run_\w+)", unfamiliar.output).group(1)  # type: ignore[union-attr]

    compared = runner.invoke(cli, ["eval", "compare", trained_id, unfamiliar_id, "--gate", "delta(close)>=-0.01"])
    assert compared.exit_code == 1, compared.output
    lines = {
        ln.split()[0]: ln.split() for ln in compared.output.splitlines() if ln.split()[:1] in (["numeric"], ["close"])
    }
    close = lines["close"]
    mean_a, mean_b, p_value = float(close[1]), float(close[2]), float(close[-2])
    assert mean_a - mean_b >= 0.3 and p_value < 0.001 and close[-1] == "mcnemar-exact", compared.output
    assert float(lines["numeric"][1]) >= float(lines["numeric"][2]), compared.output
    assert "FAIL delta(close)>=-0.01" in compared.output
