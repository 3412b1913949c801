"""Training the ``learned`` strategy's router from traces that carry feedback or evaluation scores.

Each successful trace of the route (or of ``traces_of``, a route with the same targets) whose
request body was kept and which has a quality signal (the mean of its feedback values named
``feedback``, or of its online scores by ``evaluator``; a value >= ``pass_at`` is good) becomes
one example labelled with the *cheapest tier known to suffice*:

- a good answer from tier t: t, when t is the cheapest tier or the trace shows every cheaper
  tier was tried and passed over (a cascade's escalation); otherwise unknown (skipped), since a
  cheaper tier might have done;
- a bad answer from tier t: t + 1 (the last tier when t is the last: nothing cheaper can do better).

The examples' MiniLM embeddings are split (stratified, seeded) into a training and a held-out
share; a logistic regression (scikit-learn) is fitted on the first and measured on the second:
accuracy (against the majority-tier baseline), the share the router sends to each tier, the
*under-routed* share (sent to a tier cheaper than the one that sufficed: a quality risk) and the
expected cost saving against always using the last tier, priced at each tier's mean observed cost::

    examples, skipped = collect(db, "smart", targets, feedback="thumbs", pass_at=0.5)
    router, report = fit("smart", targets, examples, embed, threshold=0.5)
    path.write_bytes(router.to_json())
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import text

from lmdeck.db import Database
from lmdeck.gateway.routing.learned import TrainedRouter, request_text
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.tracing.query import MAX_LIMIT, Cursor, TraceQuery
from lmdeck.tracing.sql_store import SQLTraceStore

#: Texts → vectors (the CLI uses all-MiniLM-L6-v2).
EmbedTexts = Callable[[list[str]], list[list[float]]]


class TrainingError(ValueError):
    """The traces cannot train a router; the message says what is missing."""


@dataclass(frozen=True)
class Example:
    trace_id: str
    text: str
    tier: int
    answered_tier: int
    cost_micros: int


@dataclass
class TrainingReport:
    """How the router was trained and how it did on the held-out share (costs in US dollars per request)."""

    route: str
    examples: int
    train: int
    test: int
    tiers: dict[int, int]
    skipped: dict[str, int]
    accuracy: float
    baseline_accuracy: float
    routed_share: dict[int, float]
    under_routed_share: float
    mean_cost_usd: dict[int, float | None]
    expected_cost_saving: float | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _signals(db: Database, route: str, feedback: str | None, evaluator: str | None) -> dict[str, list[float]]:
    """Quality values per trace id of ``route``: its feedback named ``feedback`` or its scores by ``evaluator``."""
    found: dict[str, list[float]] = {}
    queries = []
    if feedback is not None:
        queries.append(
            ("SELECT trace_id, value FROM eval_feedback WHERE route = :route AND name = :name", {"name": feedback})
        )
    if evaluator is not None:
        queries.append(
            (
                "SELECT trace_id, value FROM eval_trace_scores WHERE route = :route AND evaluator = :name",
                {"name": evaluator},
            )
        )
    with db.engine.connect() as conn:
        for sql, params in queries:
            for trace_id, value in conn.execute(text(sql), {"route": route, **params}):
                if value is not None:
                    found.setdefault(str(trace_id), []).append(float(value))
    return found


def collect(
    db: Database,
    route: str,
    targets: Sequence[str],
    *,
    feedback: str | None = None,
    evaluator: str | None = None,
    pass_at: float = 0.5,
    limit: int = 100_000,
) -> tuple[list[Example], dict[str, int]]:
    """The labelled examples of ``route``'s traces, and how many traces were skipped, by reason."""
    if feedback is None and evaluator is None:
        raise TrainingError("name the quality signal to learn from: --feedback NAME or --score EVALUATOR")
    signals = _signals(db, route, feedback, evaluator)
    tier_of = {target: i for i, target in enumerate(targets)}
    last = len(targets) - 1
    store = SQLTraceStore(db)
    skipped: Counter[str] = Counter()
    examples: list[Example] = []
    cursor: Cursor | None = None
    seen = 0
    while seen < limit:
        page = store.query(TraceQuery(route=route, cursor=cursor, limit=MAX_LIMIT))
        for record in page.records:
            seen += 1
            values = signals.get(record.id)
            tier = tier_of.get(record.target or "")
            if record.status_code >= 400:
                skipped["failed"] += 1
            elif tier is None:
                skipped["target not in the route"] += 1
            elif not values:
                skipped["no feedback or score"] += 1
            elif not isinstance(record.request_body, dict):
                skipped["no request body"] += 1
            else:
                label = _label(tier, statistics.fmean(values) >= pass_at, record.metadata, last)
                if label is None:
                    skipped["good answer from a costlier tier, cheaper ones untried"] += 1
                    continue
                body = ChatCompletionRequest.model_validate(record.request_body)
                examples.append(Example(record.id, request_text(body), label, tier, record.cost_micros))
        if page.next_cursor is None:
            break
        cursor = Cursor.decode(page.next_cursor)
    return examples, dict(skipped)


def _label(tier: int, good: bool, metadata: dict[str, Any], last: int) -> int | None:
    if not good:
        return min(tier + 1, last)
    if tier == 0:
        return 0
    routing = metadata.get("routing")
    passed_over = [t for t in (routing or {}).get("tiers", []) if t.get("outcome") in ("escalated", "failed")]
    return tier if len(passed_over) >= tier else None


def fit(
    route: str,
    targets: Sequence[str],
    examples: Sequence[Example],
    embed: EmbedTexts,
    *,
    threshold: float = 0.5,
    test_share: float = 0.2,
    seed: int = 0,
    skipped: dict[str, int] | None = None,
) -> tuple[TrainedRouter, TrainingReport]:
    """A router fitted on a seeded, stratified split of ``examples``, and its held-out report."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    labels = [e.tier for e in examples]
    counts = Counter(labels)
    if len(counts) < 2:
        raise TrainingError(
            f"{len(examples)} labelled traces, all of tier {next(iter(counts), '-')}: a router needs examples "
            "of at least two tiers (send traffic through a cascade route, with feedback or online scores)"
        )
    if min(counts.values()) < 2 or len(examples) < 10:
        raise TrainingError(f"too few labelled traces to hold some out ({dict(counts)}): collect at least 10")
    vectors = np.asarray(embed([e.text for e in examples]), dtype=np.float64)
    indices = np.arange(len(examples))
    train_idx, test_idx = train_test_split(indices, test_size=test_share, random_state=seed, stratify=labels)
    y = np.asarray(labels)
    model = LogisticRegression(max_iter=2000, C=4.0, class_weight="balanced", random_state=seed)
    model.fit(vectors[train_idx], y[train_idx])
    router = TrainedRouter(
        route=route,
        targets=list(targets),
        classes=[int(c) for c in model.classes_],
        coef=model.coef_.tolist(),
        intercept=model.intercept_.tolist(),
        metrics={},
    )
    tiers = len(targets)
    predicted = [
        next(i for i, p in enumerate(router.suffices(vectors[i_].tolist(), tiers)) if p >= threshold) for i_ in test_idx
    ]
    truth = [labels[i] for i in test_idx]
    accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
    majority = counts.most_common(1)[0][0]
    baseline = sum(t == majority for t in truth) / len(truth)
    routed = Counter(predicted)
    costs: dict[int, list[int]] = {}
    for e in examples:
        costs.setdefault(e.answered_tier, []).append(e.cost_micros)
    mean_cost = {t: (statistics.fmean(costs[t]) / 1e6 if t in costs else None) for t in range(tiers)}
    notes: list[str] = []
    saving: float | None = None
    last_cost = mean_cost[tiers - 1]
    if last_cost and all(mean_cost[p] is not None for p in predicted):
        spent = sum(mean_cost[p] or 0.0 for p in predicted)
        saving = 1.0 - spent / (last_cost * len(predicted))
    else:
        notes.append("no expected saving: some tier has no priced traces (or the last tier costs nothing)")
    report = TrainingReport(
        route=route,
        examples=len(examples),
        train=len(train_idx),
        test=len(test_idx),
        tiers=dict(sorted(counts.items())),
        skipped=dict(skipped or {}),
        accuracy=round(accuracy, 4),
        baseline_accuracy=round(baseline, 4),
        routed_share={t: round(routed.get(t, 0) / len(predicted), 4) for t in range(tiers)},
        under_routed_share=round(sum(p < t for p, t in zip(predicted, truth, strict=True)) / len(truth), 4),
        mean_cost_usd=mean_cost,
        expected_cost_saving=None if saving is None else round(saving, 4),
        notes=notes,
    )
    metrics = report.to_dict()
    return TrainedRouter(router.route, router.targets, router.classes, router.coef, router.intercept, metrics), report
