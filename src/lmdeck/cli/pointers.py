"""The commands every registry kind with pointers has, written once: ``lmdeck models`` and
``lmdeck prompts`` are each a :func:`pointer_group` of their :class:`PointerCommands`.

A model's aliases and a prompt's labels are one idea (a named, movable, audited pointer to a
version); the commands that list, move, roll back and show the history of pointers take the
kind's words (``alias``/``--alias``, ``label``/``--label``) and call the kind's
:class:`~lmdeck.sdk.pointers.PointerNamespace`::

    app = pointer_group(MODELS)        # the group, with `list`
    @app.command("show") ...           # the kind's own commands
    add_pointer_commands(app, MODELS)  # `alias` (or `label`), `rollback`, `history`
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import typer

from lmdeck.cli.connection import API_KEY, AS_JSON, BASE_URL, connect
from lmdeck.cli.tables import echo_json, table, when
from lmdeck.sdk import Client
from lmdeck.sdk.pointers import PointerNamespace


@dataclass(frozen=True)
class PointerCommands:
    """How one registry kind appears on the command line."""

    #: The ``Client`` attribute of the kind's calls: ``models`` or ``prompts``.
    namespace: str
    #: What the kind calls its pointers: ``alias`` or ``label`` (the move command's name, ``--alias``...).
    word: str
    plural: str
    #: Where moves are recorded, for ``--reason``'s help: ``deployment history``, ``label history``.
    history_name: str
    #: Help texts that are the kind's own.
    group_help: str
    list_help: str
    move_help: str
    history_help: str

    def calls(self, client: Client) -> PointerNamespace:
        found = client.namespace(self.namespace)
        assert isinstance(found, PointerNamespace)
        return found

    @property
    def a_word(self) -> str:
        return f"{'an' if self.word[0] in 'aeiou' else 'a'} {self.word}"


def history_table(moves: list[dict[str, Any]], word: str) -> str:
    rows: list[Sequence[object]] = [("WHEN", word.upper(), "FROM", "TO", "ACTION", "ACTOR", "REASON")]
    for m in moves:
        rows.append((when(m["at"]), m[word], m["from_version"], m["to_version"], m["action"], m["actor"], m["reason"]))
    return table(rows)


def move_text(name: str, pointer: str, version: int, moved: dict[str, Any]) -> str:
    """What pointing an alias (or a prompt's label) at ``version`` did."""
    if not moved["changed"]:
        return f"{name}@{pointer} already points at v{version}"
    before = f"v{moved['from_version']}" if moved["from_version"] is not None else "unset"
    return f"{name}@{pointer}: {before} → v{moved['to_version']}"


def rollback_text(name: str, pointer: str, moved: dict[str, Any]) -> str:
    return f"{name}@{pointer}: v{moved['from_version']} → v{moved['to_version']} (rolled back)"


def pointer_group(kind: PointerCommands) -> typer.Typer:
    """The kind's command group, with ``list`` (the names, their newest version and their pointers)."""
    app = typer.Typer(help=kind.group_help, no_args_is_help=True)

    @app.command("list", help=kind.list_help)
    def list_entries(as_json: bool = AS_JSON, base_url: str | None = BASE_URL, api_key: str | None = API_KEY) -> None:
        with connect(base_url, api_key) as client:
            entries = kind.calls(client).list()
        if as_json:
            echo_json(entries)
            return
        rows: list[Sequence[object]] = [("NAME", "LATEST", kind.plural.upper(), "DESCRIPTION")]
        for entry in entries:
            pointers = " ".join(f"{p}=v{v}" for p, v in sorted(entry[kind.plural].items()))
            rows.append((entry["name"], entry["latest_version"], pointers or "-", entry["description"]))
        typer.echo(table(rows))

    return app


def add_pointer_commands(app: typer.Typer, kind: PointerCommands) -> None:
    """Add the pointer commands: ``<word> NAME POINTER VERSION``, ``rollback NAME``, ``history NAME``."""
    reason_help = f"why (kept in the {kind.history_name})"
    expected_help = "move only if it points at this version now (else refused)"

    @app.command(kind.word, help=kind.move_help)
    def move(
        name: str,
        pointer: str = typer.Argument(..., metavar=kind.word.upper()),
        version: int = typer.Argument(...),
        reason: str | None = typer.Option(None, help=reason_help),
        expected_version: int | None = typer.Option(None, "--expected-version", help=expected_help),
        base_url: str | None = BASE_URL,
        api_key: str | None = API_KEY,
    ) -> None:
        with connect(base_url, api_key) as client:
            moved = kind.calls(client).move(name, pointer, version, reason=reason, expected_version=expected_version)
        typer.echo(move_text(name, pointer, version, moved))

    @app.command("rollback", help=f"Move {kind.a_word} back to the version it pointed at before its last move.")
    def rollback(
        name: str,
        pointer: str = typer.Option("production", f"--{kind.word}", help=f"the {kind.word} to move back"),
        reason: str | None = typer.Option(None, help=reason_help),
        expected_version: int | None = typer.Option(None, "--expected-version", help=expected_help),
        base_url: str | None = BASE_URL,
        api_key: str | None = API_KEY,
    ) -> None:
        with connect(base_url, api_key) as client:
            moved = kind.calls(client).move_back(name, pointer, reason=reason, expected_version=expected_version)
        typer.echo(rollback_text(name, pointer, moved))

    @app.command("history", help=kind.history_help)
    def history(
        name: str,
        pointer: str | None = typer.Option(None, f"--{kind.word}", help=f"only this {kind.word}"),
        limit: int = typer.Option(100, help="most recent moves to show"),
        as_json: bool = AS_JSON,
        base_url: str | None = BASE_URL,
        api_key: str | None = API_KEY,
    ) -> None:
        with connect(base_url, api_key) as client:
            moves = kind.calls(client).moves(name, pointer, limit)
        if as_json:
            echo_json(moves)
        elif moves:
            typer.echo(history_table(moves, kind.word))
        else:
            typer.echo(f"{name} has no {kind.word} moves yet")
