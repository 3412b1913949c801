"""LLM-as-judge: a judge prompt, called through the gateway, grades the output.

With ``prompt=NAME`` the judge is a prompt registered in the registry (rendered by the
gateway with the variables ``input``, ``output`` and ``expected``); without it a short
built-in grading instruction is sent. Any route can judge, the bundled ``demo`` included.

The judge is asked for a structured verdict (:mod:`lmdeck.evaluation.evaluators.verdict`):
pass/fail, or a grade out of ``scale`` when one is given. ``format`` says how it is asked:
``json`` sends a JSON schema as ``response_format``; ``line`` asks for a last line
``VERDICT: PASS`` (``SCORE: 7/10``); ``auto`` (the default) sends the schema and, if the
route refuses ``response_format`` with a 400 naming it, asks that route for the line
instead from then on. A reply without a valid verdict is an error on that row
(:class:`~lmdeck.evaluation.evaluators.verdict.VerdictError`), never a score.
"""

from __future__ import annotations

from typing import Any, Literal

from lmdeck.evaluation.base import EvaluatorContext, Sample, Score
from lmdeck.evaluation.evaluators.verdict import instruction, read_verdict, response_format
from lmdeck.evaluation.registry import EvaluatorRegistry
from lmdeck.evaluation.text import as_text, input_text
from lmdeck.protocol import APIError
from lmdeck.protocol.evaluation import EvaluatorError

Format = Literal["auto", "json", "line"]
FORMATS: tuple[Format, ...] = ("auto", "json", "line")

DEFAULT_INSTRUCTION = (
    "Grade the answer: is it correct{reference_clause}?\nQuestion: {input}\nAnswer: {output}\n{reply_shape}"
)
GRADED_INSTRUCTION = (
    "Grade the answer from 0 (wrong) to {top} (fully correct){reference_clause}.\n"
    "Question: {input}\nAnswer: {output}\n{reply_shape}"
)


def refuses_response_format(exc: APIError) -> bool:
    """Whether a call failed because its route does not take ``response_format``."""
    return exc.status == 400 and (exc.param == "response_format" or "response_format" in exc.message)


class LLMJudge:
    """A model grades each output: PASS=1 / FAIL=0, or its grade / ``scale``."""

    requires_reference = False

    def __init__(
        self,
        ctx: EvaluatorContext,
        route: str = "demo",
        prompt: str | None = None,
        label: str | None = None,
        version: int | None = None,
        scale: float | None = None,
        max_tokens: int = 512,
        format: str = "auto",
    ) -> None:
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0):
            raise EvaluatorError("llm_judge: scale must be > 0 (e.g. 10 for a 0-10 grade)")
        if label is not None and version is not None:
            raise EvaluatorError("llm_judge: give the judge prompt's label or its version, not both")
        if format not in FORMATS:
            raise EvaluatorError(f"llm_judge: format must be one of {', '.join(FORMATS)}, got {format!r}")
        self.name = "llm_judge"
        self.inference = ctx.require_inference("llm_judge")
        self.route = route
        self.prompt = prompt
        self.label = label
        self.version = version
        self.scale = float(scale) if scale is not None else None
        self.max_tokens = int(max_tokens)
        self.format: Format = format  # type: ignore[assignment]

    def body(self, sample: Sample, structured: bool | None = None) -> dict[str, Any]:
        """The chat request asking the judge about ``sample`` (structured: with ``response_format``)."""
        structured = self.format != "line" if structured is None else structured
        variables = {
            "input": input_text(sample.input),
            "output": sample.output,
            "expected": as_text(sample.expected) if sample.expected is not None else "",
        }
        shape = instruction(self.scale, structured)
        body: dict[str, Any] = {"model": self.route, "max_tokens": self.max_tokens, "temperature": 0}
        if structured:
            body["response_format"] = response_format(self.scale)
        if self.prompt is not None:
            ref: dict[str, Any] = {"name": self.prompt, "variables": variables}
            if self.label is not None:
                ref["label"] = self.label
            if self.version is not None:
                ref["version"] = self.version
            body["prompt"] = ref
            body["messages"] = [{"role": "user", "content": shape}]  # after the rendered prompt
            return body
        clause = f" (the reference answer is {variables['expected']!r})" if sample.expected is not None else ""
        template = DEFAULT_INSTRUCTION if self.scale is None else GRADED_INSTRUCTION
        top = f"{self.scale:g}" if self.scale is not None else ""
        text = template.format(
            reference_clause=clause, input=variables["input"], output=sample.output, reply_shape=shape, top=top
        )
        body["messages"] = [{"role": "user", "content": text}]
        return body

    async def evaluate(self, sample: Sample) -> Score:
        structured = self.format != "line"
        try:
            reply = await self.inference.chat(self.body(sample, structured), tags=["eval:judge"])
        except APIError as exc:
            if not (structured and self.format == "auto" and refuses_response_format(exc)):
                raise
            self.format = "line"  # this route takes no response_format: ask for the verdict line from now on
            reply = await self.inference.chat(self.body(sample, False), tags=["eval:judge"])
        return read_verdict(reply.text, self.scale)


def register(registry: EvaluatorRegistry) -> None:
    registry.add("llm_judge", LLMJudge)
