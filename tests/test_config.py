from lmdeck.config import check_config_text


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
