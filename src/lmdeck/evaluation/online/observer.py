"""The online evaluator: a trace observer that samples live traces and scores them in the background.

``observe`` runs on the request path, so it only checks the rules (a few comparisons
and a hash) and offers the trace to a bounded queue; everything else (evaluators,
judges, the database, metrics, events) happens in background workers. A full queue
drops the trace and counts the drop::

    online = OnlineEvaluator(store, evaluators, inference, metrics, events=None)
    online.set_rules([OnlineRule(name="json", sample_rate=0.2, evaluators=["json_valid"])])
    gateway.observers.append(online)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from lmdeck.evaluation.background import BackgroundQueue
from lmdeck.evaluation.base import Evaluator, EvaluatorContext, InferenceClient, Sample
from lmdeck.evaluation.export import EvaluationEvents, QualityMetrics
from lmdeck.evaluation.inference import is_eval_trace
from lmdeck.evaluation.online.store import OnlineStore, TraceScore
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.evaluation.runs.runner import score_safely
from lmdeck.policy.ownership import Owner
from lmdeck.protocol.evaluation import OnlineRule
from lmdeck.protocol.traces import TraceRecord

log = logging.getLogger(__name__)


def output_text(record: TraceRecord) -> str | None:
    """The answer a trace recorded, or None when its body was not kept (redaction)."""
    body = record.response_body
    if not isinstance(body, dict):
        return None
    if "content" in body and "choices" not in body:
        return str(body.get("content") or "")
    choices = body.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    first = choices[0]
    message = first.get("message")
    if isinstance(message, dict):
        content = message.get("content")
        if isinstance(content, list):
            return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return str(content or "")
    return str(first.get("text") or "")


def input_value(record: TraceRecord) -> Any:
    """What the trace asked: its message list, or a completion's prompt."""
    body = record.request_body
    if not isinstance(body, dict):
        return None
    return body.get("messages") or body.get("prompt") or body.get("input")


@dataclass(frozen=True)
class _Rule:
    rule: OnlineRule
    evaluators: list[Evaluator]
    #: The owner of a rule kept in the store: it scores only its team's traces. None for a
    #: rule of the config file, which scores every team's.
    owner: Owner | None = None

    def matches(self, record: TraceRecord) -> bool:
        if self.owner is not None and record.team_id != self.owner.team_id:
            return False
        return self.rule.matches(record)


#: Builds the inference client judges of a team's rules call through (None: the default team).
InferenceFor = Callable[[str | None], InferenceClient | None]


class OnlineEvaluator:
    """Samples finished traces by rule; scores them off the request path."""

    def __init__(
        self,
        store: OnlineStore,
        registry: EvaluatorRegistry,
        inference: InferenceClient | None,
        metrics: QualityMetrics | None = None,
        events: EvaluationEvents | None = None,
        *,
        maxsize: int = 1000,
        workers: int = 2,
        inference_for: InferenceFor | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.context = EvaluatorContext(inference)
        self.inference_for = inference_for
        self._contexts: dict[str | None, EvaluatorContext] = {}
        self.metrics = metrics
        self.events = events
        self._rules: list[_Rule] = []
        self.queue: BackgroundQueue[tuple[_Rule, TraceRecord]] = BackgroundQueue(
            "online-eval", self._handle, maxsize=maxsize, workers=workers, batch_size=20
        )
        self.unscorable = 0
        if metrics is not None:
            metrics.watch_queue("online-eval", lambda: (self.queue.depth, self.queue.dropped))

    @property
    def rules(self) -> list[OnlineRule]:
        return [r.rule for r in self._rules]

    def context_for(self, owner: Owner | None) -> EvaluatorContext:
        """Where a rule's judges call from: as the rule's team, or as the service for config rules."""
        if owner is None or self.inference_for is None:
            return self.context
        found = self._contexts.get(owner.team_id)
        if found is None:
            found = self._contexts[owner.team_id] = EvaluatorContext(self.inference_for(owner.team_id))
        return found

    def set_rules(self, rules: list[OnlineRule], owners: Mapping[str, Owner] | None = None) -> list[str]:
        """Swap in a new rule set (a rule named in ``owners`` scores only its owner's traces); returns
        the problems of rules left out (bad evaluator options)."""
        built, problems = [], []
        for rule in rules:
            owner = (owners or {}).get(rule.name)
            try:
                built.append(_Rule(rule, self.registry.create_all(rule.specs(), self.context_for(owner)), owner))
            except Exception as exc:
                problems.append(f"rule {rule.name!r}: {exc}")
        self._rules = built
        return problems

    def owner_of(self, name: str) -> Owner | None:
        """The owner of the rule in force named ``name`` (None for a config rule or no such rule)."""
        return next((r.owner for r in self._rules if r.rule.name == name), None)

    def registry_problems(self, rule: OnlineRule) -> str:
        """Why the rule's evaluators cannot be built, or an empty string."""
        try:
            self.registry.create_all(rule.specs(), self.context)
        except Exception as exc:
            return f"rule {rule.name!r}: {exc}"
        return ""

    def observe(self, record: TraceRecord) -> None:
        if not self._rules or is_eval_trace(record):
            return
        for entry in self._rules:
            sampled = entry.matches(record) and entry.rule.sampled(record)
            if sampled and self.queue.offer((entry, record)) and self.metrics is not None:
                self.metrics.sampled.labels(entry.rule.name).inc()

    async def _handle(self, batch: list[tuple[_Rule, TraceRecord]]) -> None:
        scores: list[TraceScore] = []
        for entry, record in batch:
            output = output_text(record)
            if output is None:
                self.unscorable += 1
                continue
            sample = Sample(output, input=input_value(record), metadata=record.metadata)
            for evaluator in entry.evaluators:
                score = await score_safely(evaluator, sample)
                if score.label == "evaluator_error" and self.metrics is not None:
                    self.metrics.errors.labels(evaluator.name).inc()
                scores.append(
                    TraceScore(
                        trace_id=record.id,
                        rule=entry.rule.name,
                        evaluator=evaluator.name,
                        value=score.value,
                        label=score.label,
                        explanation=score.explanation,
                        route=record.route,
                        prompt_name=record.prompt_name,
                        prompt_version=record.prompt_version,
                        model=record.upstream_model,
                        team_id=record.team_id,
                        key_id=record.key_id,
                        created_at=time.time(),
                    )
                )
                if self.metrics is not None:
                    self.metrics.observe_score(record, evaluator.name, score)
                if self.events is not None:
                    self.events.emit(record, evaluator.name, score)
        await anyio.to_thread.run_sync(self.store.add_scores, scores)

    async def start(self) -> None:
        await self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()
        if self.events is not None:
            self.events.shutdown()
