"""Plain-text tables for command output.

typer.echo(table([("NAME", "LATEST"), ("support-bot", 3), ("greeter", None)]))
# NAME         LATEST
# support-bot  3
# greeter      -
"""

from __future__ import annotations

from collections.abc import Sequence


def table(rows: Sequence[Sequence[object]]) -> str:
    """``rows`` (the first one usually a header) as left-aligned columns; ``None`` shows as ``-``."""
    cells = [[str(c) if c is not None else "-" for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)
