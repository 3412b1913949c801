"""contains: URLs and code found as spans, allowed domains exempt, prose left alone."""

from __future__ import annotations

import pytest

from lmdeck.guardrails.base import GuardContext, GuardrailError, Span
from lmdeck.guardrails.builtin import contains
from lmdeck.guardrails.builtin.contains import Contains, code_spans, url_spans
from lmdeck.guardrails.registry import GuardrailRegistry

OUTPUT = GuardContext("output")


def found(text: str, spans: list[Span] | tuple[Span, ...]) -> list[str]:
    return [text[s.start : s.end] for s in spans]


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("See https://docs.example.com/guide?a=1#x. Also", ["https://docs.example.com/guide?a=1#x"]),
        ("(www.example.org/path), then", ["www.example.org/path"]),
        ("Wiki https://en.wikipedia.org/wiki/Foo_(bar) ok", ["https://en.wikipedia.org/wiki/Foo_(bar)"]),
        ("get ftp://files.example.net/a.tar.gz!", ["ftp://files.example.net/a.tar.gz"]),
        ("HTTPS://EXAMPLE.COM", ["HTTPS://EXAMPLE.COM"]),
        ("version 1.2.3 of example dot com, e.g. or i.e.", []),
    ],
)
def test_urls_are_found_without_trailing_punctuation(text: str, urls: list[str]) -> None:
    assert found(text, url_spans(text)) == urls


def test_allowed_domains_and_their_subdomains_pass() -> None:
    text = "docs at https://docs.example.com/x and https://evil-example.com and www.example.com"
    assert found(text, url_spans(text, ["example.com"])) == ["https://evil-example.com"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Fix:\n```python\ndef f(x):\n    return x + 1\n```\nDone.", ["```python\ndef f(x):\n    return x + 1\n```"]),
        ("unclosed\n~~~js\nconst a = 1;", ["~~~js\nconst a = 1;"]),
        ("Try this:\nimport os\nprint(os.getcwd())\n\nThanks!", ["import os\nprint(os.getcwd())"]),
        ("for (int i = 0; i < n; i++) {\n  sum += a[i];\n}", ["for (int i = 0; i < n; i++) {\n  sum += a[i];\n}"]),
        ("SELECT name FROM users;\nDELETE FROM users;", ["SELECT name FROM users;\nDELETE FROM users;"]),
        ("run\n$ pip install lmdeck\n$ lmdeck serve\nthen open it", ["$ pip install lmdeck\n$ lmdeck serve"]),
        ("The meeting is at 10: we will discuss budgets; bring notes.", []),
        ("Dear team,\nThe results are in.\nWe did well.\n", []),
        ("x = 5 is the answer, and y = 3.", []),
        ("one line of code;\nthen prose follows here", []),
    ],
)
def test_code_is_fenced_blocks_or_runs_of_code_lines(text: str, code: list[str]) -> None:
    assert found(text, code_spans(text)) == code


async def test_check_blocks_with_spans_and_counts_in_the_reason() -> None:
    registry = GuardrailRegistry()
    contains.register(registry)
    guard = registry.create("contains", {})
    text = "See https://example.com/a\n```\nrm -rf / # see https://inside.example.com\n```"
    verdict = await guard.check(text, OUTPUT)
    assert verdict.blocked
    assert [s.entity for s in verdict.spans] == ["URL", "CODE"]  # the URL inside the block is part of the code
    assert verdict.reason == "contains: 1 CODE, 1 URL" and "example" not in verdict.reason
    assert (await guard.check("just words here", OUTPUT)).passed


async def test_kinds_choose_what_is_looked_for() -> None:
    text = "See https://example.com/a\n```\ncode();\n```"
    assert [s.entity for s in (await Contains(kinds=["url"]).check(text, OUTPUT)).spans] == ["URL"]
    assert [s.entity for s in (await Contains(kinds=["code"]).check(text, OUTPUT)).spans] == ["CODE"]
    one_line = Contains(kinds=["code"], min_code_lines=1)
    assert (await one_line.check("print('hi')", OUTPUT)).blocked


async def test_long_texts_are_scanned_too() -> None:
    text = "word " * 5000 + "https://example.com/x"
    assert found(text, (await Contains(kinds=["url"]).check(text, OUTPUT)).spans) == ["https://example.com/x"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kinds": ["url", "email"]}, "kinds must be a non-empty list of url, code"),
        ({"kinds": "url"}, "kinds must be"),
        ({"kinds": []}, "kinds must be"),
        ({"allowed_domains": "example.com"}, "allowed_domains must be a list"),
        ({"min_code_lines": 0}, "min_code_lines must be a whole number >= 1"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, object], message: str) -> None:
    with pytest.raises(GuardrailError, match=message):
        Contains(**options)  # type: ignore[arg-type]
