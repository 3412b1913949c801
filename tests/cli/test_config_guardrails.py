"""``lmdeck config check`` on the guardrails block: shape and cross-reference errors, each with its line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from lmdeck.cli.main import app as cli

CONFIG = """\
default_routes: false
guardrails:
  definitions:
    emails: {type: regex, options: {patterns: ["@"]}}
    swear:
      type: regex
      options: {colour: red}
    ghost: {type: no_such_type}
  data_policy: {restricted: [emails, nothing], action: reroute}
routes:
  - name: support
    targets: [{provider: openai, model: gpt-4o, base_url: "http://127.0.0.1:9/v1"}]
    guardrails:
      input:
        - {use: emails, action: mask}
        - {use: injection, action: block}
"""


def check(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    path = tmp_path / "lmdeck.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    prefix = f"{path}:"
    return result.exit_code, [line.removeprefix(prefix) for line in result.stderr.splitlines()]


def test_guardrail_errors_are_reported_with_their_lines(tmp_path: Path) -> None:
    code, lines = check(tmp_path, CONFIG)
    assert code == 1
    assert lines[0].startswith("7: guardrails.definitions.swear.options: ") and "colour" in lines[0]
    assert lines[1].startswith("8: guardrails.definitions.ghost.type: unknown guardrail type 'no_such_type'")
    assert lines[2].startswith("9: guardrails.data_policy.restricted.1: no guardrail named 'nothing'")
    assert lines[3].startswith("16: routes.0.guardrails.input.1.use: no guardrail named 'injection'")
    assert len(lines) == 4


def test_shape_errors_come_from_the_schema_with_their_lines(tmp_path: Path) -> None:
    text = CONFIG.replace("{use: emails, action: mask}", "{use: emails, action: shred}")
    code, lines = check(tmp_path, text)
    assert code == 1
    assert any(line.startswith("15: routes.0.guardrails.input.0.action:") for line in lines), lines


def test_a_valid_guardrail_config_is_ok(tmp_path: Path) -> None:
    text = "\n".join(
        line
        for line in CONFIG.splitlines()
        if "swear" not in line
        and "colour" not in line
        and line != "type: regex\n"
        and "ghost" not in line
        and "injection" not in line
    ).replace("      type: regex\n", "")
    text = text.replace("[emails, nothing]", "[emails]")
    code, lines = check(tmp_path, text + "\n")
    assert code == 0, lines


def test_a_guardrail_that_needs_embeddings_without_the_embed_route_is_reported(tmp_path: Path) -> None:
    text = "default_routes: false\nguardrails:\n  definitions:\n    injection: {type: prompt_injection}\n"
    code, lines = check(tmp_path, text)
    assert code == 1 and lines[0].startswith("4: guardrails.definitions.injection.options: ")
    code, lines = check(tmp_path, text.replace("default_routes: false", "default_routes: true"))
    assert code == 0, lines
