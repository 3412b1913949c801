"""Anomaly detectors: detection rate and false alarms per simulated week, per detector and incident kind.

    python bench/anomaly.py                          # 30 cases per incident kind + 30 clean weeks per scenario
    python bench/anomaly.py --per-kind 10 --clean 10 --only auto,seasonal
    python bench/anomaly.py --sensitivity high

Cases come from :mod:`lmdeck.testing.synthetic_series` (seeded: the counts repeat on any
machine): hourly series with one injected spike, level shift or slow ramp, or none, judged step
by step over their fifth week. Two scenarios:

- ``seasonal``: a daily cycle and quieter weekends, each evaluation sees four weeks of history;
- ``short``: no cycle, each evaluation sees only the last 48 steps (a new route or signal);
- ``5min``: as ``seasonal`` at 5-minute steps with 28 days of history (an anomaly rule's defaults),
  12 times the evaluations a week; a sixth of the cases, ``auto`` only (it is the slow one).

``static`` is the baseline measured in the same run: a plain static threshold, anomalous when the
newest value leaves the [min, max] of the history the detectors see, the band someone would draw
by hand from a chart of it. Ratios are detector over static (detection rate, false alarms). The
time per evaluation depends on the machine and its load; the rest does not.

Prints one JSON document after the tables (``--out`` writes it too).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lmdeck.monitoring.anomaly.base import Series, load_detectors
from lmdeck.testing.synthetic_series import KINDS, WEEK_STEPS, Score, detection, generate

SCENARIOS: dict[str, dict[str, Any]] = {
    "seasonal": {"seasonal": True, "history": 4 * WEEK_STEPS},
    "short": {"seasonal": False, "history": 48},
    # an anomaly rule's defaults: 5-minute steps, 28 days of history; a sixth of the cases, auto only
    "5min": {"seasonal": True, "history": 28 * 288, "step": 300, "history_weeks": 4, "share": 6, "only": ("auto",)},
}
DETECTORS = ("mad", "ewma", "seasonal", "changepoint", "auto")


def static_threshold(series: Series) -> bool:
    """The baseline: the newest value outside the [min, max] of the history before it."""
    values = np.asarray(series.values, dtype=np.float64)
    history = values[:-1][np.isfinite(values[:-1])]
    return bool(history.size) and not (history.min() <= values[-1] <= history.max())


def run(name: str, judge: Any, cases: list[Any], history: int) -> tuple[Score, float]:
    started = time.perf_counter()
    score = detection(judge, cases, history=history + 1)
    evaluations = score.judged_steps or 1
    return score, (time.perf_counter() - started) * 1000 / evaluations


def row(name: str, score: Score, ms: float) -> dict[str, Any]:
    return {
        "detector": name,
        **{kind: round(score.rate(kind), 3) for kind in KINDS},
        "all": round(score.rate(), 3),
        "false_alarms_per_week": round(score.false_alarms_per_week, 3),
        "median_delay_steps": statistics.median(score.delays) if score.delays else None,
        "ms_per_evaluation": round(ms, 3),
    }


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'detector':<12}"
        + "".join(f"{k:>12}" for k in (*KINDS, "all"))
        + f"{'FA/week':>10}{'delay':>7}{'ms/eval':>9}"
    )
    header += f"{'det ratio':>11}{'FA ratio':>10}"
    lines = [header]
    base = next(r for r in rows if r["detector"] == "static")
    for r in rows:
        det_ratio = r["all"] / base["all"] if base["all"] else float("inf")
        fa_ratio = r["false_alarms_per_week"] / base["false_alarms_per_week"] if base["false_alarms_per_week"] else 0.0
        delay = "-" if r["median_delay_steps"] is None else f"{r['median_delay_steps']:g}"
        lines.append(
            f"{r['detector']:<12}"
            + "".join(f"{r[k]:>12.2f}" for k in (*KINDS, "all"))
            + f"{r['false_alarms_per_week']:>10.2f}{delay:>7}{r['ms_per_evaluation']:>9.2f}"
            + f"{det_ratio:>11.2f}{fa_ratio:>10.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--per-kind", type=int, default=30, help="cases per incident kind and scenario")
    parser.add_argument("--clean", type=int, default=30, help="weeks without incident per scenario")
    parser.add_argument("--sensitivity", choices=("low", "medium", "high"), default="medium")
    parser.add_argument("--only", default="", help="comma-separated detectors (static always runs)")
    parser.add_argument("--scenarios", default="seasonal,short,5min")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    wanted = [d for d in DETECTORS if not args.only or d in args.only.split(",")]
    registry = load_detectors()
    report: dict[str, Any] = {"seed": args.seed, "sensitivity": args.sensitivity, "scenarios": {}}
    for scenario in args.scenarios.split(","):
        spec = SCENARIOS[scenario]
        share = spec.get("share", 1)
        cases = generate(
            args.seed,
            max(1, args.per_kind // share),
            max(1, args.clean // share),
            seasonal=spec["seasonal"],
            step=spec.get("step", 3600),
            history_weeks=spec.get("history_weeks", 4),
        )
        names = [name for name in wanted if name in spec.get("only", wanted)]
        judges: list[tuple[str, Callable[[Series], bool] | Any]] = [("static", static_threshold)]
        judges += [(name, registry.create(name, sensitivity=args.sensitivity)) for name in names]
        rows = []
        for name, judge in judges:
            score, ms = run(name, judge, cases, spec["history"])
            rows.append(row(name, score, ms))
            print(f"  {scenario}/{name} done", file=sys.stderr, flush=True)
        weeks = len(cases)
        print(
            f"\n{scenario}: {max(1, args.per_kind // share)} cases per incident kind + {max(1, args.clean // share)} "
            f"clean weeks ({weeks} weeks judged), step {spec.get('step', 3600)} s, history {spec['history']} steps, "
            f"sensitivity {args.sensitivity}"
        )
        print(table(rows))
        report["scenarios"][scenario] = rows
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
