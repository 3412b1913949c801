"""The loss curve of a fine-tuning job as an inline SVG polyline, from its ``metrics`` events.

    chart = loss_chart([{"step": 1, "train_loss": 2.1}, {"step": 2, "train_loss": 1.7}])
    chart.points   # "0.0,0.0 600.0,160.0" in a 600 by 160 box, lower loss lower on the page

Inline SVG needs no script, so the page draws it under the console's content security policy as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

WIDTH = 600
HEIGHT = 160


@dataclass(frozen=True)
class LossChart:
    """A polyline's ``points`` in a ``WIDTH`` by ``HEIGHT`` box, with the axis ranges it was scaled from."""

    points: str
    steps: tuple[int, int]
    loss: tuple[float, float]
    count: int


def loss_points(events: Iterable[Mapping[str, Any] | None]) -> list[tuple[int, float]]:
    """``(step, train_loss)`` from metrics events' data, one per step (the last seen wins), by step."""
    by_step: dict[int, float] = {}
    for data in events:
        if not data:
            continue
        step, loss = data.get("step"), data.get("train_loss")
        if isinstance(step, int) and isinstance(loss, (int, float)):
            by_step[step] = float(loss)
    return sorted(by_step.items())


def loss_chart(events: Iterable[Mapping[str, Any] | None]) -> LossChart | None:
    """The chart of ``events``' losses; None when no event carries a step's loss."""
    points = loss_points(events)
    if not points:
        return None
    first, last = points[0][0], points[-1][0]
    low, high = min(p[1] for p in points), max(p[1] for p in points)
    span_x, span_y = (last - first) or 1, (high - low) or 1.0
    drawn = " ".join(
        f"{(step - first) / span_x * WIDTH:.1f},{(high - loss) / span_y * HEIGHT:.1f}" for step, loss in points
    )
    return LossChart(points=drawn, steps=(first, last), loss=(low, high), count=len(points))
