"""Command output: plain-text tables, JSON, times.

typer.echo(table([("NAME", "LATEST"), ("support-bot", 3), ("greeter", None)]))
# NAME         LATEST
# support-bot  3
# greeter      -
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import typer


def table(rows: Sequence[Sequence[object]]) -> str:
    """``rows`` (the first one usually a header) as left-aligned columns; ``None`` shows as ``-``."""
    cells = [[str(c) if c is not None else "-" for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def echo_json(value: Any) -> None:
    """``value`` as indented JSON with sorted keys (what ``--json`` prints)."""
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def when(at: float | None) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``; ``-`` for none."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"
