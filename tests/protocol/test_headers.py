"""Header values and URLs lmdeck would send: refused where configured when they cannot be sent."""

from __future__ import annotations

import pytest

from lmdeck.protocol.headers import check_header, check_url


@pytest.mark.parametrize("value", ["a\r\nx-injected: 1", "a\nb", "a\rb", "a\x00b", "tab\tis\tfine\x7f"])
def test_header_values_with_line_breaks_or_controls_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="header 'x-team'"):
        check_header("x-team", value)


@pytest.mark.parametrize("name", ["x team", "x:team", "", "x\nteam"])
def test_header_names_are_tokens(name: str) -> None:
    with pytest.raises(ValueError, match="header name"):
        check_header(name, "v")


def test_ordinary_headers_pass() -> None:
    check_header("X-Team", "payments (eu) \t v2")


@pytest.mark.parametrize("url", ["http://h/v1\r\n", "http://h /v1", "http://h/v1\x00", "http://h/\tv1"])
def test_urls_that_cannot_be_sent_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        check_url(url)
