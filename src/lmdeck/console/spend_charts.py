"""uPlot columns for the spend page: cost per interval and group, and a budget's burn-down.

    columns = spend_by_group(rows, "team_id", since=start, step=3600, now=time.time(), labels={"t1": "search"})
    burn = burndown(rows, "t1", "team_id", window=(start, end), step=3600, now=now, limit_micros=5_000_000)

``rows`` are series rows as :func:`lmdeck.console.data.trace_summaries` gives them (``bucket``, epoch
seconds; ``group``; ``cost_micros``). Every value is in US dollars; ``x`` is epoch seconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

#: Groups drawn one line each; the cheaper rest are summed as "other".
MAX_GROUPS = 6
MICROS = 1_000_000


def _label(value: object, labels: Mapping[str, str]) -> str:
    if value is None:
        return "(none)"
    return labels.get(str(value), str(value))


def spend_by_group(
    rows: Sequence[Mapping[str, Any]],
    dimension: str,
    *,
    since: float,
    step: int,
    now: float,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Columns ``x`` and ``s0``…: cost per ``step`` seconds from ``since`` to ``now`` for the costliest
    groups of ``dimension`` (``series`` names them, dearest first), the rest as one "other" line."""
    labels = labels or {}
    start = int(since // step * step)
    xs = list(range(start, int(now) + 1, step))
    cost: dict[object, dict[int, int]] = defaultdict(dict)
    totals: dict[object, int] = defaultdict(int)
    for row in rows:
        group = row["group"].get(dimension)
        micros = int(row.get("cost_micros", 0))
        cost[group][int(row["bucket"])] = cost[group].get(int(row["bucket"]), 0) + micros
        totals[group] += micros
    ranked = sorted(totals, key=lambda g: (-totals[g], str(g)))
    shown, rest = ranked[:MAX_GROUPS], ranked[MAX_GROUPS:]
    out: dict[str, Any] = {"x": xs, "series": []}
    for i, group in enumerate(shown):
        key = f"s{i}"
        out["series"].append({"label": _label(group, labels), "key": key})
        out[key] = [cost[group].get(x, 0) / MICROS for x in xs]
    if rest:
        out["series"].append({"label": "other", "key": "other"})
        out["other"] = [sum(cost[g].get(x, 0) for g in rest) / MICROS for x in xs]
    return out


def burndown(
    rows: Sequence[Mapping[str, Any]],
    subject: str,
    dimension: str,
    *,
    window: tuple[float, float],
    step: int,
    now: float,
    limit_micros: int,
) -> dict[str, Any]:
    """Columns ``x`` (the window's start, then the end of each ``step``), ``spent_usd`` (the subject's
    cumulative recorded cost, None after ``now``) and ``limit_usd`` (flat), across the whole window."""
    start, end = window
    by_bucket: dict[int, int] = defaultdict(int)
    for row in rows:
        if row["group"].get(dimension) == subject:
            by_bucket[int(row["bucket"])] += int(row.get("cost_micros", 0))
    xs = [int(start)]
    spent: list[float | None] = [0.0]
    running = 0
    bucket = int(start)
    while bucket < end:
        running += by_bucket.get(bucket, 0)
        xs.append(bucket + step)
        spent.append(running / MICROS if bucket <= now else None)
        bucket += step
    return {"x": xs, "spent_usd": spent, "limit_usd": [limit_micros / MICROS] * len(xs)}
