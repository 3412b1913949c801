"""A signed-in console session over plain HTTP (httpx) against a real ``lmdeck serve``, for page tests
that read HTML and post forms as a browser would, CSRF token included.

    with ConsoleClient(gw.url) as console:
        csrf = console.sign_in(gw.admin_key)
        page = console.get("/console/spend")
        console.post("/console/spend/budgets", {"csrf_token": csrf, ...})
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any

import httpx

_FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_META_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


class ConsoleClient:
    """An httpx client that keeps the console's session cookie; redirects are not followed."""

    def __init__(self, base_url: str, *, timeout: float = 120.0) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout, follow_redirects=False)

    def sign_in(self, key: str) -> str:
        """Sign in with ``key`` (any earlier session forgotten) and return the session's CSRF token.

        Raises ``AssertionError`` when the console does not sign the key in (wrong key, inference role).
        """
        self.http.cookies.clear()
        form = self.http.get("/console/login")
        token = _FORM_TOKEN.search(form.text)
        assert token is not None, form.text[:500]
        answer = self.http.post(
            "/console/login", data={"csrf_token": token.group(1), "api_key": key, "next": "/console/overview"}
        )
        assert answer.status_code == 303, f"{answer.status_code}: {answer.text[:500]}"
        page = self.http.get("/console/overview")
        found = _META_TOKEN.search(page.text)
        assert found is not None and found.group(1), page.text[:500]
        return found.group(1)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        """A form post (``application/x-www-form-urlencoded``) as the signed-in user."""
        return self.http.post(path, data=data)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ConsoleClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
