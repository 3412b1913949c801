"""LLM-as-judge: a judge prompt, called through the gateway, grades the output.

With ``prompt=NAME`` the judge is a prompt registered in the registry (rendered by the
gateway with the variables ``input``, ``output`` and ``expected``); without it a short
built-in grading instruction is sent. Any route can judge, the bundled ``demo`` included.
The reply is read as ``PASS``/``FAIL`` (or yes/no, correct/incorrect) or as a number
divided by ``scale``; the whole reply is kept as the explanation.
"""

from __future__ import annotations

import re
from typing import Any

from lmdeck.evaluation.base import EvaluatorContext, EvaluatorError, Sample, Score
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.evaluation.text import as_text, input_text

DEFAULT_INSTRUCTION = (
    "Grade the answer. Reply PASS if it is correct"
    "{reference_clause}, otherwise FAIL, then one sentence why.\n"
    "Question: {input}\nAnswer: {output}"
)
_LABELS = {
    "pass": 1.0,
    "yes": 1.0,
    "correct": 1.0,
    "good": 1.0,
    "fail": 0.0,
    "no": 0.0,
    "incorrect": 0.0,
    "wrong": 0.0,
    "bad": 0.0,
}
_WORD = re.compile(r"[A-Za-z]+")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)")


def read_verdict(reply: str, scale: float) -> Score:
    """A judge's reply as a score: a leading verdict word wins, else the first number / scale."""
    text = reply.strip()
    first = _WORD.search(text[:40])
    if first and first.group(0).lower() in _LABELS:
        word = first.group(0).lower()
        return Score(_LABELS[word], label=word, explanation=text[:500])
    number = _NUMBER.search(text)
    if number:
        value = float(number.group(1)) / scale
        if 0.0 <= value <= 1.0:
            return Score(value, explanation=text[:500])
    return Score(None, label="unparsed", explanation=f"the judge's reply has no verdict: {text[:300]!r}")


class LLMJudge:
    """A model grades each output; the score is its verdict (PASS=1, FAIL=0) or number / scale."""

    requires_reference = False

    def __init__(
        self,
        ctx: EvaluatorContext,
        route: str = "demo",
        prompt: str | None = None,
        label: str | None = None,
        version: int | None = None,
        scale: float = 1.0,
        max_tokens: int = 64,
    ) -> None:
        if scale <= 0:
            raise EvaluatorError("llm_judge: scale must be > 0 (e.g. 10 for a 0-10 grade)")
        if label is not None and version is not None:
            raise EvaluatorError("llm_judge: give the judge prompt's label or its version, not both")
        self.name = "llm_judge"
        self.inference = ctx.require_inference("llm_judge")
        self.route = route
        self.prompt = prompt
        self.label = label
        self.version = version
        self.scale = float(scale)
        self.max_tokens = int(max_tokens)

    def body(self, sample: Sample) -> dict[str, Any]:
        variables = {
            "input": input_text(sample.input),
            "output": sample.output,
            "expected": as_text(sample.expected) if sample.expected is not None else "",
        }
        body: dict[str, Any] = {"model": self.route, "max_tokens": self.max_tokens, "temperature": 0}
        if self.prompt is not None:
            ref: dict[str, Any] = {"name": self.prompt, "variables": variables}
            if self.label is not None:
                ref["label"] = self.label
            if self.version is not None:
                ref["version"] = self.version
            body["prompt"] = ref
            body["messages"] = []
            return body
        clause = f" (the reference answer is {variables['expected']!r})" if sample.expected is not None else ""
        text = DEFAULT_INSTRUCTION.format(reference_clause=clause, input=variables["input"], output=sample.output)
        body["messages"] = [{"role": "user", "content": text}]
        return body

    async def evaluate(self, sample: Sample) -> Score:
        reply = await self.inference.chat(self.body(sample), tags=["eval:judge"])
        return read_verdict(reply.text, self.scale)


def register(registry: EvaluatorRegistry) -> None:
    registry.add("llm_judge", LLMJudge)
