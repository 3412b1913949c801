"""What every evaluator shares: the sample it judges, the score it returns, the protocol it follows.

An evaluator looks at one model output (with the input and, when there is one, the
expected answer) and returns a :class:`Score`: a value in [0, 1] and/or a label, plus
an explanation a person can read::

    class Shouting:
        name = "shouting"
        requires_reference = False

        async def evaluate(self, sample: Sample) -> Score:
            loud = sample.output.isupper()
            return Score(1.0 if loud else 0.0, label="loud" if loud else "calm", explanation="all caps")

Evaluators that need a model (embedding similarity, LLM-as-judge) reach it through the
:class:`InferenceClient` in their :class:`EvaluatorContext`, which sends requests
through the gateway like any other client.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from lmdeck.protocol.evaluation import EvaluatorError


@dataclass(frozen=True)
class Sample:
    """One thing to judge: the output, and what it answered."""

    output: str
    expected: Any = None
    input: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """An evaluator's verdict on one sample.

    >>> Score(1.0, explanation="matches").passed
    True
    """

    value: float | None
    label: str | None = None
    explanation: str = ""

    def __post_init__(self) -> None:
        if self.value is None:
            if self.label is None:
                raise EvaluatorError("a score needs a value in [0, 1], a label, or both")
            return
        if not isinstance(self.value, int | float) or math.isnan(self.value) or not 0.0 <= self.value <= 1.0:
            raise EvaluatorError(f"a score value must be a number in [0, 1], got {self.value!r}")

    @property
    def passed(self) -> bool:
        return self.value is not None and self.value >= 0.5

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "label": self.label, "explanation": self.explanation}


@runtime_checkable
class Evaluator(Protocol):
    """Scores one sample. ``requires_reference`` says whether it needs ``sample.expected``."""

    name: str
    requires_reference: bool

    async def evaluate(self, sample: Sample) -> Score: ...


@dataclass(frozen=True)
class ChatReply:
    """What a chat call through the gateway gave back."""

    text: str
    trace_id: str | None = None
    latency_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


class InferenceClient(Protocol):
    """Calls models through the gateway (in-process or over HTTP)."""

    async def chat(self, body: dict[str, Any], *, tags: Sequence[str] = ()) -> ChatReply: ...

    async def embed(self, route: str, texts: list[str]) -> list[list[float]]: ...


@dataclass
class EvaluatorContext:
    """What an evaluator may use besides the sample: a way to call models."""

    inference: InferenceClient | None = None

    def require_inference(self, evaluator: str) -> InferenceClient:
        if self.inference is None:
            raise EvaluatorError(
                f"evaluator {evaluator!r} calls a model: run it through the gateway "
                "(lmdeck eval run, or an online rule) rather than on its own"
            )
        return self.inference
