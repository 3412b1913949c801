"""``lmdeck eval`` and the Python client against a real gateway on loopback."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn
from typer.testing import CliRunner

from lmdeck.app.assembly import build_gateway
from lmdeck.app.factory import create_app
from lmdeck.cli.main import app as cli
from lmdeck.sdk import Client, LMDeckError
from lmdeck.settings import Settings
from lmdeck.tracing.memory import MemoryTraceSink

from .conftest import ADMIN_KEY, fake_providers, make_keys


@pytest.fixture
def server(make_settings: Callable[..., Settings]) -> Iterator[tuple[str, dict[str, str]]]:
    gateway = build_gateway(
        make_settings(), providers=fake_providers(), sink=MemoryTraceSink(), announce_admin_key=False
    )
    app = create_app(gateway=gateway)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # generous: a server starting on a loaded machine
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.02)
    port = uv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", make_keys(gateway)
    finally:
        uv.should_exit = True
        thread.join(timeout=20)


def seed(client: Client) -> None:
    client.post("/api/registry/prompts", json={"name": "adder"})
    for text in ("What is {{a}} + {{b}}?", "Add {{a}} to {{b}}."):
        spec = {"messages": [{"role": "user", "content": text}], "variables": {"a": "integer", "b": "integer"}}
        client.post("/api/registry/prompts/adder/versions", json=spec)
    rows = [{"input": {"a": i, "b": i + 4}, "expected": str(2 * i + 4)} for i in range(30)]
    client.post("/api/registry/datasets/sums/versions", json={"rows": rows})


def test_eval_run_compare_and_gate_from_the_command_line(
    server: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, _ = server
    monkeypatch.setenv("LMDECK_BASE_URL", base_url)
    monkeypatch.setenv("LMDECK_API_KEY", ADMIN_KEY)
    with Client() as client:
        seed(client)
    runner = CliRunner()
    common = ["eval", "run", "--dataset", "sums@1", "--route", "calc", "--evaluators", "exact,numeric"]
    good = runner.invoke(cli, [*common, "--prompt", "adder@1", "--gate", "exact>=0.9"])
    assert good.exit_code == 0, good.output
    assert "gate on run_" in good.output and "passed" in good.output
    # 30 of 30 right passes the point estimate, but the interval still reaches below 0.9.
    assert "point estimate; estimate 1.0000, 95% interval [0.88" in good.output, good.output
    assert "warning: the point estimate passes but the 95% interval" in good.output
    assert "write low(exact)>=0.9" in good.output
    assert re.search(r"exact\s+1\.000\s+\[0\.88\d, 1\.000\]\s+30", good.output), good.output
    good_id = re.search(r"run (run_\w+)", good.output).group(1)  # type: ignore[union-attr]

    bad = runner.invoke(cli, [*common, "--prompt", "adder@2", "--gate", "exact>=0.9"])
    assert bad.exit_code == 1, bad.output
    assert "FAIL exact>=0.9: 0 >= 0.9" in bad.output
    bad_id = re.search(r"run (run_\w+)", bad.output).group(1)  # type: ignore[union-attr]

    compared = runner.invoke(cli, ["eval", "compare", good_id, bad_id, "--gate", "delta(exact)>=-0.01"])
    assert compared.exit_code == 1, compared.output
    assert re.search(
        r"exact\s+1\.000\s+0\.000\s+-1\.000\s+\[-1\.000, -0\.\d+\]\s+1\.9e-09\s+mcnemar-exact", compared.output
    )
    assert "30 rows changed" in compared.output and "-> B 'I do not know.'" in compared.output

    gated = runner.invoke(cli, ["eval", "gate", good_id, "exact>=0.9, p(exact)<0.05 vs " + bad_id])
    assert gated.exit_code == 0, gated.output
    # A broken gate (no such evaluator in the run, no baseline for a paired clause) is not a regression.
    unknown = runner.invoke(cli, ["eval", "gate", good_id, "rouge_l>=0.5"])
    assert unknown.exit_code == 2, unknown.output
    assert "ERR  rouge_l>=0.5" in unknown.output and "no evaluator 'rouge_l'" in unknown.output
    no_baseline = runner.invoke(cli, ["eval", "gate", good_id, "delta(exact)>=0"])
    assert no_baseline.exit_code == 2 and "name the baseline run" in no_baseline.output
    listed = runner.invoke(cli, ["eval", "list"])
    assert good_id in listed.output and bad_id in listed.output
    shown = runner.invoke(cli, ["eval", "show", bad_id, "--rows"])
    assert "#0 'I do not know.' expected '4'" in shown.output
    listed_evaluators = runner.invoke(cli, ["eval", "evaluators"])
    assert "llm_judge" in listed_evaluators.output and "abs_tol" in listed_evaluators.output


def test_cli_errors_exit_2_with_the_reason(server: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, _ = server
    monkeypatch.setenv("LMDECK_BASE_URL", base_url)
    monkeypatch.setenv("LMDECK_API_KEY", ADMIN_KEY)
    runner = CliRunner()
    missing = runner.invoke(cli, ["eval", "run", "--dataset", "nope@1", "--route", "calc", "--evaluators", "exact"])
    assert missing.exit_code == 2 and "nope" in missing.output
    no_eval = runner.invoke(cli, ["eval", "run", "--dataset", "nope@1", "--route", "calc"])
    assert no_eval.exit_code == 2 and "at least one evaluator" in no_eval.output
    bad_gate = runner.invoke(cli, ["eval", "gate", "run_x", "exact>>1"])
    assert bad_gate.exit_code == 2 and "not understood" in bad_gate.output


def test_python_client_feedback_and_experiments(server: tuple[str, dict[str, str]]) -> None:
    base_url, keys = server
    with Client(base_url, ADMIN_KEY) as admin, Client(base_url, keys["inference"]) as app:
        created = admin.experiments.create(
            {
                "name": "split",
                "route": "calc",
                "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "route": "sloppy"}],
            }
        )
        assert created["status"] == "running"
        import httpx

        r = httpx.post(
            f"{base_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {keys['inference']}"},
            json={"model": "calc", "user": "ada", "messages": [{"role": "user", "content": "What is 1 + 2?"}]},
            timeout=60,
        )
        assert r.status_code == 200 and r.headers["x-lmdeck-experiment"].startswith("split=")
        sent = app.feedback.send(r.headers["x-request-id"], value=True, name="thumbs", source="user")
        assert sent["value"] == 1.0
        assert [f["name"] for f in admin.feedback.list()] == ["thumbs"]
        verdict = admin.experiments.get("split")["verdict"]
        assert verdict["status"] == "collecting" and verdict["method"] == "msprt-normal-mixture"
        shown = CliRunner().invoke(
            cli, ["eval", "experiments", "show", "split", "--base-url", base_url, "--api-key", ADMIN_KEY]
        )
        assert shown.exit_code == 0, shown.output
        assert "method: msprt-normal-mixture (mixture_scale=0.2, min_samples=30, alpha=0.05" in shown.output
        with pytest.raises(LMDeckError) as denied:
            app.experiments.list()
        assert denied.value.status == 403
        assert admin.experiments.stop("split")["status"] == "stopped"
