"""Bounded samples of one route's traffic in the two windows of a drift report.

    scope = DriftScope(route="demo", windows=Windows.trailing(reference="7d", current="1d", until=now))
    samples = fetch_samples(db, scope)       # blocking: the analytics pool, or a worker thread
    samples.current.prompts                  # [(trace id, user text), ...] at most scope.max_samples

Each window is sampled, not read whole, so a report costs the same on a quiet route and on a busy one:
at most ``max_samples`` traces per window (and as many evaluator scores per evaluator). The sample is a
bottom-k sample on the random part of the trace id (characters 13-20 of lmdeck's time-ordered ids,
:func:`lmdeck.protocol.traces.new_trace_id`): a uniform sample without replacement, and the same traces
every time the same window is asked for. When a window holds many more traces than the cap, a
prefilter on that same key keeps the database's sort to about 1.3 times the cap. The count of every
trace in the window is still read (``total``), from the ``(route, created_at)`` index.

Evaluator scores (``eval_trace_scores``, written by online evaluation) are the newest ``max_samples``
per evaluator in each window.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, select, text

from lmdeck.db import Database
from lmdeck.evaluation.sql import team_condition
from lmdeck.monitoring.drift.texts import answer_text, is_refusal, prompt_text
from lmdeck.monitoring.drift.windows import Window, Windows
from lmdeck.tracing.schema import traces

#: Traces read per window unless a report asks otherwise, and the most it may ask for.
DEFAULT_MAX_SAMPLES = 500
MAX_SAMPLES = 2000

#: How far past the cap the prefilter aims, so that it rarely keeps fewer than the cap.
_PREFILTER_MARGIN = 1.3
_KEY_DIGITS = 8


@dataclass(frozen=True)
class DriftScope:
    """Whose traffic a report compares: one route (optionally one prompt and version) of the teams in scope.

    ``all_teams`` False limits it to ``team_id``'s traces (None: the traces of no team).
    """

    route: str
    windows: Windows
    prompt_name: str | None = None
    prompt_version: int | None = None
    team_id: str | None = None
    all_teams: bool = True
    max_samples: int = DEFAULT_MAX_SAMPLES

    def __post_init__(self) -> None:
        if not 1 <= self.max_samples <= MAX_SAMPLES:
            raise ValueError(f"max_samples must be between 1 and {MAX_SAMPLES}, got {self.max_samples}")


@dataclass
class WindowSample:
    """What was read of one window: counts, and the sampled traces' texts and numbers.

    ``prompts`` and ``answers`` are ``(trace id, text)`` pairs; ``output_tokens`` and ``refusals`` are
    those of the sampled successful traces (``refusals`` only where the answer was stored);
    ``scores`` maps an evaluator to its sampled scores.
    """

    window: Window
    total: int = 0
    sampled: int = 0
    prompts: list[tuple[str, str]] = field(default_factory=list)
    answers: list[tuple[str, str]] = field(default_factory=list)
    output_tokens: list[int] = field(default_factory=list)
    refusals: list[bool] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)
    prompt_versions: dict[str, int] = field(default_factory=dict)


@dataclass
class DriftSamples:
    scope: DriftScope
    reference: WindowSample
    current: WindowSample


def _conditions(scope: DriftScope, window: Window) -> list[ColumnElement[bool]]:
    conditions = [
        traces.c.route == scope.route,
        traces.c.created_at >= window.since,
        traces.c.created_at < window.until,
    ]
    if scope.prompt_name is not None:
        conditions.append(traces.c.prompt_name == scope.prompt_name)
    if scope.prompt_version is not None:
        conditions.append(traces.c.prompt_version == scope.prompt_version)
    if not scope.all_teams:
        conditions.append(traces.c.team_id.is_(None) if scope.team_id is None else traces.c.team_id == scope.team_id)
    return conditions


def _sample_rows(conn: Connection, scope: DriftScope, window: Window, total: int) -> list[Any]:
    key = func.substr(traces.c.id, 13, _KEY_DIGITS)
    columns = (
        traces.c.id,
        traces.c.status_code,
        traces.c.output_tokens,
        traces.c.prompt_version,
        traces.c.request_body,
        traces.c.response_body,
    )
    where = _conditions(scope, window)
    cap = scope.max_samples
    if total > cap * _PREFILTER_MARGIN:
        share = cap * _PREFILTER_MARGIN / total
        threshold = f"{int(share * 16**_KEY_DIGITS):0{_KEY_DIGITS}x}"
        rows = conn.execute(
            select(*columns).where(and_(*where, key < threshold)).order_by(key, traces.c.id).limit(cap)
        ).all()
        if len(rows) == cap:
            return list(rows)
    return list(conn.execute(select(*columns).where(and_(*where)).order_by(key, traces.c.id).limit(cap)).all())


def _scores(conn: Connection, scope: DriftScope, window: Window) -> dict[str, list[float]]:
    conditions = ["route = :route", "created_at >= :since", "created_at < :until", "value IS NOT NULL"]
    params: dict[str, Any] = {"route": scope.route, "since": window.since, "until": window.until}
    if scope.prompt_name is not None:
        conditions.append("prompt_name = :prompt_name")
        params["prompt_name"] = scope.prompt_name
    if scope.prompt_version is not None:
        conditions.append("prompt_version = :prompt_version")
        params["prompt_version"] = scope.prompt_version
    if not scope.all_teams:
        conditions.append(team_condition(scope.team_id))
        params["team"] = scope.team_id
    evaluators = conn.execute(
        text(f"SELECT DISTINCT evaluator FROM eval_trace_scores WHERE {' AND '.join(conditions)}"), params
    ).scalars()
    found: dict[str, list[float]] = {}
    for evaluator in sorted(str(e) for e in evaluators):
        rows = conn.execute(
            text(
                f"SELECT value FROM eval_trace_scores WHERE {' AND '.join(conditions)} AND evaluator = :evaluator "
                "ORDER BY created_at DESC LIMIT :cap"
            ),
            {**params, "evaluator": evaluator, "cap": scope.max_samples},
        ).scalars()
        found[evaluator] = [float(v) for v in rows]
    return found


def _window(conn: Connection, scope: DriftScope, window: Window) -> WindowSample:
    total = int(
        conn.execute(select(func.count()).select_from(traces).where(and_(*_conditions(scope, window)))).scalar_one()
    )
    sample = WindowSample(window=window, total=total)
    versions: Counter[str] = Counter()
    for row in _sample_rows(conn, scope, window, total) if total else []:
        sample.sampled += 1
        versions[str(row.prompt_version) if row.prompt_version is not None else "none"] += 1
        prompt = prompt_text(row.request_body)
        if prompt is not None:
            sample.prompts.append((row.id, prompt))
        if row.status_code >= 400:
            continue
        sample.output_tokens.append(int(row.output_tokens))
        answer = answer_text(row.response_body)
        if answer is not None:
            sample.answers.append((row.id, answer))
        refused = is_refusal(row.response_body)
        if refused is not None:
            sample.refusals.append(refused)
    sample.prompt_versions = dict(versions)
    sample.scores = _scores(conn, scope, window)
    return sample


def fetch_samples(db: Database, scope: DriftScope) -> DriftSamples:
    """Both windows' samples (blocking; ``fn(db, ...)`` shape, so it runs in the analytics pool)."""
    with db.engine.connect() as conn:
        reference = _window(conn, scope, scope.windows.reference)
        current = _window(conn, scope, scope.windows.current)
    return DriftSamples(scope=scope, reference=reference, current=current)


def by_evaluator(samples: DriftSamples) -> dict[str, tuple[list[float], list[float]]]:
    """Each evaluator scored in either window: (reference scores, current scores)."""
    pairs: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for name, values in samples.reference.scores.items():
        pairs[name][0].extend(values)
    for name, values in samples.current.scores.items():
        pairs[name][1].extend(values)
    return dict(pairs)
