"""A group of calls on the client (``client.traces``, ``client.keys``...), and what it calls through.

A namespace module defines a :class:`Namespace` subclass and ``NAMESPACE = TheClass``;
:class:`lmdeck.sdk.client.Client` finds it by name on first use. A namespace sees the client
only as a :class:`Caller`, so namespace modules and the client module do not import each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

Params = Mapping[str, Any]


class Caller(Protocol):
    """What a namespace calls: :class:`lmdeck.sdk.client.Client`'s request methods (decoded JSON back,
    :class:`~lmdeck.sdk.errors.LMDeckError` on a failure)."""

    def request(self, method: str, path: str, *, params: Params | None = None, json: Any = None) -> Any: ...

    def get(self, path: str, *, params: Params | None = None) -> Any: ...

    def post(self, path: str, *, json: Any = None, params: Params | None = None) -> Any: ...

    def patch(self, path: str, *, json: Any = None) -> Any: ...

    def put(self, path: str, *, json: Any = None) -> Any: ...

    def delete(self, path: str, *, params: Params | None = None) -> Any: ...


class Namespace:
    """One group of calls on a :class:`Client` (``client.traces``, ``client.keys``...).

    >>> class Things(Namespace):
    ...     name = "things"
    ...     def list(self) -> list[dict]:
    ...         return self.client.request("GET", "/api/things")["data"]
    """

    name: ClassVar[str] = ""

    def __init__(self, client: Caller) -> None:
        self.client = client
