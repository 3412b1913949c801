from pathlib import Path

import pytest

from lmdeck.config import ConfigFileError, check_config_text, load_settings


def test_valid_config_has_no_problems() -> None:
    text = "routes:\n  - name: a\n    targets:\n      - provider: openai\n        model: m\n"
    assert check_config_text(text) == []


def test_problem_names_its_line() -> None:
    text = "port: 4000\nroutes:\n  - name: a\n    targets:\n      - provider: openai\n        modle: m\n"
    problems = check_config_text(text)
    lines = {p.line for p in problems}
    assert 6 in lines, problems
    assert any("modle" in p.location for p in problems)


def test_invalid_yaml_reports_a_line() -> None:
    problems = check_config_text("routes: [\n")
    assert problems and problems[0].line is not None


def test_without_a_file_a_bad_environment_variable_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./lmdeck.yaml
    with pytest.raises(ConfigFileError) as refused:
        load_settings(environ={"LMDECK_PORT": "abc"})
    assert refused.value.path == "the environment (LMDECK_*)"
    assert [problem.location for problem in refused.value.problems] == ["port"]


def test_a_bad_value_from_outside_the_file_blames_no_line_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lmdeck.yaml"
    path.write_text("# routes come later\nlog_level: info\n")
    with pytest.raises(ConfigFileError) as refused:
        load_settings(path, environ={"LMDECK_PORT": "abc"})
    [problem] = refused.value.problems
    assert (problem.line, problem.location) == (None, "port")
    assert "not set in the file" in problem.message
