"""What may go into an HTTP header or a request line that lmdeck sends.

A header value holding a line break would end the header early (header injection); the
HTTP clients refuse to send one, so a configured value with one would fail every request
it is on. :func:`check_header` and :func:`check_url` refuse such values where they are
configured, naming the fix::

    check_header("x-team", "a\\r\\nb")   # ValueError: header 'x-team': the value holds a line break (CR or LF) ...
"""

from __future__ import annotations

import re

#: A header name: RFC 9110 ``token`` characters.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", re.ASCII)
#: Control characters other than horizontal tab (RFC 9110 field-value: no CR, LF, NUL...).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def control_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent in a header (a line break, another control character), or None."""
    if "\r" in value or "\n" in value:
        return "holds a line break (CR or LF)"
    found = _CONTROL.search(value)
    if found:
        return f"holds the control character {found.group()!r}"
    return None


def check_header(name: str, value: str) -> None:
    """Raise ``ValueError`` unless ``name: value`` can be sent as an HTTP header as it is."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"header {name!r}: a header name is letters, digits and !#$%&'*+-.^_`|~ only")
    problem = control_problem(value)
    if problem:
        raise ValueError(f"header {name!r}: the value {problem}; write it on one line without control characters")


def check_url(url: str) -> None:
    """Raise ``ValueError`` if ``url`` holds a space or a control character: it could not be sent as it is.

    (Which schemes and hosts an upstream may have is the egress policy's to say.)
    """
    problem = control_problem(url)
    if problem:
        raise ValueError(f"the URL {problem}; write it on one line")
    if any(c.isspace() for c in url):
        raise ValueError(f"the URL {url!r} holds a space: percent-encode it (%20)")
