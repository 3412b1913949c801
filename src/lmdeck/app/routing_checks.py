"""The cascade's evaluator check: an evaluator of :mod:`lmdeck.evaluation` judges a cheaper target's answer.

The gateway cannot import evaluation (it is a layer above), so the app adds this check to the
gateway's :class:`~lmdeck.gateway.routing.confidence.ConfidenceChecks` under the kind
``evaluator``::

    cascade:
      checks:
        - kind: evaluator
          evaluator: {name: json_schema}      # the schema of the request's response_format, when it has one
          min_score: 1.0

The evaluator sees each choice's text as ``output``, the request's messages as ``input`` and, in
``metadata["schema"]``, the JSON schema of a ``response_format: json_schema`` request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lmdeck.evaluation.base import Evaluator, EvaluatorContext, Sample
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.gateway.routing.confidence import ConfidenceCheck, ConfidenceChecks, Verdict, answer_texts
from lmdeck.gateway.routing.learned import LearnedRouters
from lmdeck.gateway.routing.strategy import StrategyRegistry
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.protocol.evaluation import EvaluatorError, EvaluatorSpec
from lmdeck.settings import CascadeCheckConfig, ConfigError


class EvaluatorCheck:
    """Passes when the evaluator scores every choice of the answer at least ``min_score``."""

    needs_logprobs = False

    def __init__(self, evaluator: Evaluator, min_score: float) -> None:
        self.evaluator = evaluator
        self.name = f"evaluator:{evaluator.name}"
        self.min_score = min_score

    async def judge(self, request: Any, response: BaseModel) -> Verdict:
        metadata: dict[str, Any] = {}
        messages: Any = None
        if isinstance(request, ChatCompletionRequest):
            messages = [m.model_dump(exclude_none=True) for m in request.messages]
            schema = ((request.response_format or {}).get("json_schema") or {}).get("schema")
            if isinstance(schema, dict):
                metadata["schema"] = schema
        texts = answer_texts(response)
        if not texts:
            return Verdict(False, "the answer has no choices")
        lowest: float | None = None
        for text in texts:
            try:
                score = await self.evaluator.evaluate(Sample(output=text, input=messages, metadata=metadata))
            except EvaluatorError as exc:
                return Verdict(False, f"{self.evaluator.name} could not score the answer: {exc}")
            value = score.value if score.value is not None else (1.0 if score.passed else 0.0)
            lowest = value if lowest is None else min(lowest, value)
            if value < self.min_score:
                why = f": {score.explanation}" if score.explanation else ""
                return Verdict(False, f"{self.evaluator.name} scored {value:g} < {self.min_score:g}{why}", value)
        return Verdict(True, f"{self.evaluator.name} scored {lowest:g} >= {self.min_score:g}", lowest)


def confidence_checks(evaluators: EvaluatorRegistry) -> ConfidenceChecks:
    """The gateway's checks plus ``evaluator``, built from ``evaluators`` (a bad spec is a ``ConfigError``)."""
    checks = ConfidenceChecks.builtin()

    def evaluator_check(config: CascadeCheckConfig) -> ConfidenceCheck:
        assert config.evaluator is not None  # the settings validate it
        try:
            spec = EvaluatorSpec(name=config.evaluator["name"], options=config.evaluator.get("options") or {})
            evaluator = evaluators.create(spec, EvaluatorContext())
        except (EvaluatorError, ValueError) as exc:
            raise ConfigError(f"cascade check: {exc}") from None
        return EvaluatorCheck(evaluator, config.min_score)

    checks.add("evaluator", evaluator_check)
    return checks


def routing_strategies(evaluators: EvaluatorRegistry, data_dir: Path) -> StrategyRegistry:
    """The strategies a gateway serves with: the built-ins, cascade judged with evaluators too."""
    return StrategyRegistry.builtin(checks=confidence_checks(evaluators), routers=LearnedRouters(data_dir=data_dir))
