"""The Python client for lmdeck's HTTP API.

    from lmdeck import Client

    client = Client()  # LMDECK_BASE_URL and LMDECK_API_KEY, else http://127.0.0.1:4000
    page = client.traces.list(route="demo", limit=20)
    trace = client.traces.get(page.data[0].id)

The client is a thin layer over one ``httpx.Client``: :meth:`Client.request`
sends a call and returns the decoded JSON, raising :class:`LMDeckError` with the
server's OpenAI-shaped error. Each group of calls (``client.traces``,
``client.keys``, ...) is a :class:`Namespace` subclass in its own module
``lmdeck.sdk.<name>`` that sets ``NAMESPACE = TheClass``; the client finds it by
that name the first time it is used, so a new group needs no change here.

Exceptions::

    LMDeckError            the server answered with an error, or could not be reached
      .status              HTTP status (None when the server was not reached)
      .code / .type        the error's ``code`` and ``type`` from its body
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from lmdeck.protocol.connection import client_environment
from lmdeck.sdk.errors import LMDeckError
from lmdeck.sdk.namespace import Namespace, Params

if TYPE_CHECKING:
    from lmdeck.sdk.sessions import Sessions
    from lmdeck.sdk.traces import Traces

__all__ = ["Client"]

NAMESPACE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _error_from(response: httpx.Response) -> LMDeckError:
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return LMDeckError(
            str(error.get("message") or response.reason_phrase),
            status=response.status_code,
            type=error.get("type"),
            code=error.get("code"),
            param=error.get("param"),
            body=body,
        )
    text = response.text[:500] or response.reason_phrase
    return LMDeckError(text, status=response.status_code, body=body)


def _query(params: Params | None) -> httpx.QueryParams:
    """Query parameters without the unset ones; booleans as true/false, sequences repeated."""
    out: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple | set | frozenset) else [value]
        for item in values:
            out.append((key, ("true" if item else "false") if isinstance(item, bool) else str(item)))
    return httpx.QueryParams(out)


class Client:
    """lmdeck's HTTP API from Python.

    >>> client = Client("http://127.0.0.1:4000", api_key="sk-lmdeck-...")
    >>> client.base_url
    'http://127.0.0.1:4000'
    """

    if TYPE_CHECKING:
        traces: Traces
        sessions: Sessions

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        env_url, env_key = client_environment()
        self.base_url = (base_url or env_url).rstrip("/")
        self.api_key = api_key if api_key is not None else env_key
        sent = {"user-agent": "lmdeck-python", **(headers or {})}
        if self.api_key:
            sent["authorization"] = f"Bearer {self.api_key}"
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=sent, transport=transport)
        self._namespaces: dict[str, Namespace] = {}

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        files: Mapping[str, tuple[str, bytes]] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one call; the decoded JSON body (None when empty), or :class:`LMDeckError`.

        ``files`` (name → (filename, content)) and ``data`` send a multipart form instead of JSON.
        """
        try:
            response = self._http.request(method, path, params=_query(params), json=json, files=files, data=data)
        except httpx.TimeoutException as exc:
            raise LMDeckError(f"lmdeck at {self.base_url} did not answer in time ({exc})") from exc
        except httpx.TransportError as exc:
            raise LMDeckError(
                f"cannot reach lmdeck at {self.base_url} ({exc}): start it with `lmdeck serve` "
                "or point LMDECK_BASE_URL at it"
            ) from exc
        if response.status_code >= 400:
            raise _error_from(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise LMDeckError(f"{method} {path} answered with a body that is not JSON", status=200) from exc

    def get(self, path: str, *, params: Params | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, *, json: Any = None, params: Params | None = None) -> Any:
        return self.request("POST", path, json=json, params=params)

    def patch(self, path: str, *, json: Any = None) -> Any:
        return self.request("PATCH", path, json=json)

    def put(self, path: str, *, json: Any = None) -> Any:
        return self.request("PUT", path, json=json)

    def delete(self, path: str, *, params: Params | None = None) -> Any:
        return self.request("DELETE", path, params=params)

    def namespace(self, name: str) -> Namespace:
        """The call group ``name``, imported from ``lmdeck.sdk.<name>`` on first use."""
        found = self._namespaces.get(name)
        if found is not None:
            return found
        if not NAMESPACE_NAME.match(name):
            raise AttributeError(name)
        try:
            module = importlib.import_module(f"lmdeck.sdk.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"lmdeck.sdk.{name}":
                raise
            raise AttributeError(f"lmdeck.Client has no {name!r} calls (no module lmdeck.sdk.{name})") from None
        cls = getattr(module, "NAMESPACE", None)
        if not (isinstance(cls, type) and issubclass(cls, Namespace)):
            raise AttributeError(f"lmdeck.sdk.{name} does not define NAMESPACE = <a Namespace subclass>")
        found = self._namespaces[name] = cls(self)
        return found

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.namespace(name)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
