"""Configuration that could never be sent upstream is refused by `lmdeck config check` and at start.

Regression: a target header holding CR/LF was accepted, then every request through the target
failed with a 500 (without ``x-request-id``) when the HTTP client refused to send it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmdeck.cli.main import app as cli
from lmdeck.config import check_config_text

HEADER_WITH_CRLF = """\
routes:
  - name: chat
    targets:
      - provider: openai
        model: m
        base_url: http://127.0.0.1:9/v1
        headers:
          x-team: "payments\\r\\nx-injected: 1"
"""


def test_config_check_names_the_header_and_its_line(tmp_path: Path) -> None:
    problems = check_config_text(HEADER_WITH_CRLF)
    assert len(problems) == 1
    assert problems[0].line == 8 and "routes.0.targets.0.headers" in problems[0].location
    assert "line break" in problems[0].message
    path = tmp_path / "lmdeck.yaml"
    path.write_text(HEADER_WITH_CRLF)
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert "x-team" in result.output and "line break" in result.output


@pytest.mark.parametrize(
    "target",
    [
        'base_url: "http://127.0.0.1:9/v1\\nx"',
        "base_url: 'not a url'",
        "headers: {'bad name': v}",
    ],
)
def test_other_unsendable_targets_are_refused(target: str) -> None:
    text = f"routes:\n  - name: chat\n    targets:\n      - {{provider: openai, model: m, {target}}}\n"
    assert check_config_text(text), target


def _serve(config: Path, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LMDECK_")}
    full_env.update({"LMDECK_DATA_DIR": str(data_dir), **(env or {})})
    command = [sys.executable, "-c", "from lmdeck.cli.main import main; main()", "serve", "--config", str(config)]
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_serve_refuses_to_start_with_such_a_header(tmp_path: Path) -> None:
    config = tmp_path / "lmdeck.yaml"
    config.write_text(HEADER_WITH_CRLF)
    done = _serve(config, tmp_path / "data", {"LMDECK_PORT": "9"})
    assert done.returncode == 2, done.stderr
    assert "x-team" in done.stderr and "line break" in done.stderr


def test_serve_refuses_a_secret_with_a_trailing_newline(tmp_path: Path) -> None:
    config = tmp_path / "lmdeck.yaml"
    config.write_text(
        "default_routes: false\nroutes:\n  - name: chat\n    targets:\n"
        "      - {provider: openai, model: m, base_url: 'http://127.0.0.1:9/v1', api_key: {$env: TEST_UPSTREAM_KEY}}\n"
    )
    done = _serve(config, tmp_path / "data", {"TEST_UPSTREAM_KEY": "sk-upstream\n", "LMDECK_PORT": "9"})
    assert done.returncode == 2, done.stderr
    assert "TEST_UPSTREAM_KEY" in done.stderr and "line break" in done.stderr
    assert "Traceback" not in done.stderr
