"""Fills annotation queues from their rules: new traces, feedback and online scores since each queue's
watermark, matched against the rule and sent to the queue (once per trace).

    feeder = AnnotationFeeder(store, traces=SQLTraceStore(db), settle_s=10.0)
    added = feeder.tick(now=time.time())        # {"support-review": 3}: traces sent per queue (blocking)

A rule reads what has settled (created at least ``settle_s`` before ``now``, so that traces still
in the spool have landed) after the queue's watermark, then moves the watermark to ``now -
settle_s``, in one transaction with the items it adds. A queue watches only its own team's
traces. Production calls :meth:`tick` every ``interval_s`` from the gateway (:meth:`start`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio
from sqlalchemy import select, text

from lmdeck.evaluation.annotation.store import AnnotationStore, StoredQueue
from lmdeck.polling import Poller
from lmdeck.protocol.annotation import QueueRule
from lmdeck.protocol.evaluation import sample_point
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.schema import from_row, traces

log = logging.getLogger(__name__)

#: Most rows one rule reads per tick; the rest waits for the next tick.
BATCH = 2000


def flagged_by_guardrail(record: TraceRecord) -> bool:
    """Whether a guardrail acted on the trace (``metadata["guardrail_actions"]``, a list or a count)."""
    actions = record.metadata.get("guardrail_actions") if isinstance(record.metadata, Mapping) else None
    if isinstance(actions, list):
        return bool(actions)
    return isinstance(actions, int) and not isinstance(actions, bool) and actions > 0


def accepts(rule: QueueRule, queue: str, team_id: str | None, record: TraceRecord) -> bool:
    """Whether ``rule`` of queue ``queue`` (owned by ``team_id``) sends ``record`` (its source's threshold
    checked by the caller)."""
    if record.team_id != team_id or not rule.filter.matches(record):
        return False
    if rule.guardrail and not flagged_by_guardrail(record):
        return False
    return rule.sample_rate >= 1.0 or sample_point(record.id, f"annotation:{queue}") < rule.sample_rate


class AnnotationFeeder:
    """Sends traces to the queues whose rules they match (see the module docs)."""

    def __init__(
        self,
        store: AnnotationStore,
        *,
        settle_s: float = 10.0,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settle_s = settle_s
        self.clock = clock
        self._poller = Poller(
            self._tick_now,
            interval=interval_s,
            name="annotation-feeder",
            log=log,
            failure=f"filling annotation queues failed; retrying in {interval_s:g}s",
        )

    def tick(self, now: float) -> dict[str, int]:
        """Send what each rule matched since its queue's watermark (blocking); traces added per queue."""
        added: dict[str, int] = {}
        for queue in self.store.queues():
            if queue.spec.rule is not None:
                added[queue.spec.name] = self._feed(queue, queue.spec.rule, until=now - self.settle_s)
        return added

    def _feed(self, queue: StoredQueue, rule: QueueRule, *, until: float) -> int:
        since = queue.watermark if queue.watermark is not None else until
        if until <= since:
            return 0
        name, team = queue.spec.name, queue.owner.team_id
        with self.store.db.engine.begin() as conn:
            if rule.source == "traces":
                of_team = traces.c.team_id.is_(None) if team is None else traces.c.team_id == team
                stmt = (
                    select(traces)
                    .where(traces.c.created_at > since, traces.c.created_at <= until, of_team)
                    .order_by(traces.c.created_at)
                    .limit(BATCH)
                )
                rows = conn.execute(stmt).all()
                records = [from_row(r) for r in rows]
                reached = records[-1].created_at if len(records) == BATCH else until
                chosen = [r for r in records if accepts(rule, name, team, r)]
            else:
                if rule.feedback_below is not None:
                    sql = "SELECT trace_id, created_at FROM eval_feedback WHERE name = :n AND value < :v"
                    key, limit = rule.feedback_below.name, rule.feedback_below.value
                else:
                    assert rule.score_below is not None
                    sql = "SELECT trace_id, created_at FROM eval_trace_scores WHERE evaluator = :n AND value < :v"
                    key, limit = rule.score_below.evaluator, rule.score_below.value
                found = conn.execute(
                    text(f"{sql} AND created_at > :since AND created_at <= :until ORDER BY created_at LIMIT :l"),
                    {"n": key, "v": limit, "since": since, "until": until, "l": BATCH},
                ).all()
                reached = float(found[-1][1]) if len(found) == BATCH else until
                records = self._records(conn, dict.fromkeys(r[0] for r in found))
                chosen = [r for r in records if accepts(rule, name, team, r)]
            why = {"traces": "rule", "feedback": "rule: low feedback", "scores": "rule: low score"}[rule.source]
            added = self.store.add_items(
                name, [(r.id, r.team_id) for r in chosen], source="rule", reason=why, conn=conn
            )
            self.store.set_watermark(conn, name, reached)
        return len(added)

    def _records(self, conn: Any, ids: Iterable[str]) -> list[TraceRecord]:
        wanted = list(ids)
        if not wanted:
            return []
        rows = conn.execute(select(traces).where(traces.c.id.in_(wanted))).all()
        return [from_row(r) for r in rows]

    async def _tick_now(self) -> dict[str, int]:
        return await anyio.to_thread.run_sync(self.tick, self.clock())

    async def start(self) -> None:
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()
