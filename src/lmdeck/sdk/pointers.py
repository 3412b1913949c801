"""What ``client.models`` and ``client.prompts`` share: a registry kind whose versions have pointers.

A model's aliases and a prompt's labels are one idea: a named, movable, audited pointer to a
version (``support-bot@production``, ``support-reply@staging``). :class:`PointerNamespace`
implements the calls once, for either kind; each kind names them in its own words
(``client.models.alias`` / ``client.prompts.label``, ``unalias`` / ``unlabel``) and may also be
driven through the kind-neutral names, as the CLI does::

    client.models.move("support-bot", "production", 2, reason="beats v1")   # == .alias(...)
    client.prompts.move_back("support-reply", "production")                # == .rollback(...)
    for move in client.models.moves("support-bot", "production"):
        print(move["at"], move["from_version"], "->", move["to_version"])

Every call raises :class:`~lmdeck.sdk.errors.LMDeckError` on a failure; a move with
``expected_version`` that no longer holds is a 409 with code ``version_conflict``.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from lmdeck.sdk.namespace import Namespace


class PointerNamespace(Namespace):
    """The calls of ``/api/registry/<collection>`` that every registry kind with pointers has."""

    #: The URL segment of the kind's collection: ``models`` or ``prompts``.
    collection: ClassVar[str] = ""
    #: What the kind calls its pointers: ``alias`` or ``label`` (also the history filter's name).
    pointer_word: ClassVar[str] = ""
    #: Their plural, the URL segment under a name: ``aliases`` or ``labels``.
    pointer_plural: ClassVar[str] = ""

    def _path(self, name: str, tail: str = "") -> str:
        return f"/api/registry/{self.collection}/{quote(name, safe='')}{tail}"

    def _pointer_path(self, name: str, pointer: str, tail: str = "") -> str:
        return self._path(name, f"/{self.pointer_plural}/{quote(pointer, safe='')}{tail}")

    def _entry(self, name: str) -> dict[str, Any]:
        """The registered name with its versions and pointers."""
        shown: dict[str, Any] = self.client.get(self._path(name))
        return shown

    def register(self, name: str, description: str | None = None) -> dict[str, Any]:
        """Register ``name`` for the caller's team (or update its description)."""
        created: dict[str, Any] = self.client.post(
            f"/api/registry/{self.collection}", json={"name": name, "description": description}
        )
        return created

    def move(
        self, name: str, pointer: str, version: int, *, reason: str | None = None, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Point ``name@pointer`` at ``version``, live at once; with ``expected_version``, only if it still
        points there. The move's record: ``changed``, ``from_version``, ``to_version``..."""
        body = {"version": version, "reason": reason, "expected_version": expected_version}
        moved: dict[str, Any] = self.client.put(self._pointer_path(name, pointer), json=body)
        return moved

    def remove(
        self, name: str, pointer: str, *, reason: str | None = None, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Remove ``name@pointer`` (kept in the history)."""
        removed: dict[str, Any] = self.client.delete(
            self._pointer_path(name, pointer), params={"reason": reason, "expected_version": expected_version}
        )
        return removed

    def move_back(
        self, name: str, pointer: str, *, reason: str | None = None, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Move ``name@pointer`` back to the version it pointed at before its last move."""
        moved: dict[str, Any] = self.client.post(
            self._pointer_path(name, pointer, "/rollback"),
            json={"reason": reason, "expected_version": expected_version},
        )
        return moved

    def moves(self, name: str, pointer: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Every move of ``name``'s pointers (or only of ``pointer``), newest first, at most ``limit``."""
        data: list[dict[str, Any]] = self.client.get(
            self._path(name, "/history"), params={self.pointer_word: pointer, "limit": limit}
        )["data"]
        return data

    # Last in the class: below it, `list` would name this method.
    def list(self) -> list[dict[str, Any]]:
        """Every registered name the caller may read, with where its pointers point."""
        data: list[dict[str, Any]] = self.client.get(f"/api/registry/{self.collection}")["data"]
        return data
