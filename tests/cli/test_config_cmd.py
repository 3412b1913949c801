"""``lmdeck config check``: a valid file is ok; ``--pipeline`` also prints the order its gateway runs steps in."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmdeck.cli.main import app as cli


def _check(tmp_path: Path, text: str, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "lmdeck.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["config", "check", str(path), *args])
    return result.exit_code, result.stdout, result.stderr


def test_check_without_pipeline_prints_ok_only(tmp_path: Path) -> None:
    code, out, _ = _check(tmp_path, "port: 4100\n")
    assert code == 0
    assert out.strip() == f"{tmp_path / 'lmdeck.yaml'}: ok"


def test_pipeline_prints_each_phase_and_step_in_order(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    code, out, err = _check(tmp_path, f"data_dir: {data_dir}\n", "--pipeline")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{tmp_path / 'lmdeck.yaml'}: ok; the pipeline, outermost step first:"
    assert [line.split() for line in lines[1:]] == [
        ["edge", "stream_usage"],
        ["identify", "authenticate"],
        ["trace", "record"],
        ["trace", "shadow"],
        ["resolve", "flags"],
        ["resolve", "experiment"],
        ["resolve", "release"],
        ["resolve", "prompt"],
        ["resolve", "flag-routes"],
        ["resolve", "experiment-pin"],
        ["resolve", "bundle"],
        ["resolve", "compress"],
        ["admit", "concurrency"],
        ["admit", "ratelimit"],
        ["admit", "budget"],
        ["cache", "cache-exact"],
        ["cache", "cache-semantic"],
        ["meter", "cost"],
        ["route", "applied-routes"],
    ]
    assert not data_dir.exists(), "the order is shown without opening the config's data directory"


def test_pipeline_of_an_invalid_config_prints_its_problems_instead(tmp_path: Path) -> None:
    code, out, err = _check(tmp_path, "port: nope\n", "--pipeline")
    assert code == 1
    assert "port" in err and "edge" not in out


def test_pipeline_of_a_config_the_gateway_would_refuse_names_the_reason(tmp_path: Path) -> None:
    metadata = (
        "routes:\n  - name: chat\n    targets: [{provider: openai, model: m, base_url: 'http://169.254.169.254/v1'}]\n"
    )
    code, out, err = _check(tmp_path, f"data_dir: {tmp_path / 'data'}\n{metadata}", "--pipeline")
    assert code == 1
    assert "routes.0.targets.0.base_url" in err and "route 'chat'" in err
    assert "stream_usage" not in out


def test_without_a_config_file_it_checks_the_defaults_serve_would_run_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LMDECK_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["config", "check", "--pipeline"])
    assert result.exit_code == 0, result.stderr
    assert "no config file" in result.stderr and "LMDECK_CONFIG" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "(defaults): ok; the pipeline, outermost step first:"
    assert [line.split()[1] for line in lines[1:]][:3] == ["stream_usage", "authenticate", "record"]


def test_without_a_path_it_checks_the_file_lmdeck_config_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    named = tmp_path / "named.yaml"
    named.write_text("port: nope\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LMDECK_CONFIG", str(named))
    result = CliRunner().invoke(cli, ["config", "check"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{named}:1: port:")


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "check", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "missing.yaml: cannot read" in result.stderr


def test_without_a_config_file_a_bad_environment_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LMDECK_CONFIG", raising=False)
    monkeypatch.setenv("LMDECK_PORT", "abc")
    result = CliRunner().invoke(cli, ["config", "check"])
    assert result.exit_code == 1
    assert "the environment (LMDECK_*) is not a valid lmdeck config:\n  port: " in result.stderr
    assert result.stdout == ""


def test_pipeline_reports_a_cascade_check_naming_an_unknown_evaluator(tmp_path: Path) -> None:
    config = (
        "routes:\n  - name: smart\n    strategy: cascade\n    targets: [local:demo, openai:gpt-4o]\n"
        "    cascade: {checks: [{kind: evaluator, evaluator: {name: no_such_evaluator}}]}\n"
    )
    code, _, err = _check(tmp_path, config, "--pipeline")
    assert code == 1 and "unknown evaluator 'no_such_evaluator'" in err
