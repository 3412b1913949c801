"""The search space of a prompt optimization: held-out split, instruction variants, demonstrations, candidates.

Everything here is pure and seeded, so the same request always tries the same candidates::

    split = split_rows(12, holdout=0.5, seed=0)          # Split(train=(…6 indices…), heldout=(…6…))
    base = PromptShape.of(spec)                           # the system text apart from the rest
    plans = plan_candidates(instruction_variants(base.instruction, ["Be brief."]), pool_size=6, n=4, k=2, seed=0)
    spec_for(base, plans[0].instruction, [Demo("What is 1+1?", "2", "labeled")], spec)   # a PromptVersionSpec

Demonstrations are drawn only from ``split.train``; the held-out rows that score a candidate are
never among them (a candidate that has seen the answer it is scored on would win for nothing).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lmdeck.protocol.registry import PromptVersionSpec

DemoSource = Literal["bootstrapped", "labeled"]

#: Deterministic rewrites of an instruction (``{base}`` is the original, followed by a space when
#: it is not empty). The empty rewrite drops the instruction: some models answer better without one.
REWRITES: tuple[tuple[str, str], ...] = (
    ("bare", ""),
    ("format", "{base}Follow the format of the examples exactly."),
    ("concise", "{base}Answer with only what was asked, nothing else."),
    ("steps", "{base}Work it out step by step, then give the answer."),
)

_JINJA_MARKERS = ("{{", "{%", "{#")


@dataclass(frozen=True)
class Split:
    """Row indices: ``train`` (demonstrations come from here) and ``heldout`` (scored); disjoint."""

    train: tuple[int, ...]
    heldout: tuple[int, ...]


def split_rows(count: int, *, holdout: float, seed: int) -> Split:
    """A seeded split of ``count`` rows: ``round(count * holdout)`` held out (at least 1 and at most
    ``count - 1`` when ``count >= 2``), each side in dataset order.

    >>> split_rows(4, holdout=0.5, seed=0)
    Split(train=(1, 2), heldout=(0, 3))
    """
    order = list(range(count))
    random.Random(f"split:{seed}").shuffle(order)
    held = min(max(1, round(count * holdout)), count - 1) if count >= 2 else count
    return Split(train=tuple(sorted(order[held:])), heldout=tuple(sorted(order[:held])))


@dataclass(frozen=True)
class Instruction:
    """An instruction to try: its text (empty: none) and where it came from (``original``, ``given``
    or a rewrite's name)."""

    text: str
    source: str


def instruction_variants(original: str, given: Sequence[str] = ()) -> list[Instruction]:
    """The original first, then the texts ``given``, then :data:`REWRITES` of the original; duplicates
    (by text) dropped, first kept.

    >>> [i.source for i in instruction_variants("Be kind.", ["Be brief."])]
    ['original', 'given', 'bare', 'format', 'concise', 'steps']
    """
    base = f"{original.strip()} " if original.strip() else ""
    found = [Instruction(original, "original"), *(Instruction(t, "given") for t in given)]
    found += [Instruction(template.format(base=base).strip(), name) for name, template in REWRITES]
    seen: set[str] = set()
    out = []
    for item in found:
        if item.text.strip() not in seen:
            seen.add(item.text.strip())
            out.append(item)
    return out


@dataclass(frozen=True)
class Demo:
    """One demonstration: the user turn's text, the answer, and whether the answer is the model's own
    (``bootstrapped``: the original prompt got this row right) or the row's expected output (``labeled``)."""

    user: str
    answer: str
    source: DemoSource
    row: int | None = None


@dataclass(frozen=True)
class Plan:
    """One candidate: an instruction and the positions of its demonstrations in the demo pool."""

    number: int
    instruction: Instruction
    demos: tuple[int, ...]


def plan_candidates(instructions: Sequence[Instruction], *, pool_size: int, n: int, k: int, seed: int) -> list[Plan]:
    """Up to ``n`` candidates, none equal to the original prompt: candidate ``i`` takes instruction
    ``i`` (cycling; with ``k == 0`` the original is skipped) and a seeded random ``k``-subset of the pool
    (in the pool's order), distinct subsets first. Fewer than ``n`` when the space is smaller.

    >>> [(p.instruction.source, p.demos) for p in plan_candidates(instruction_variants("Hi."), pool_size=4, n=2, k=2, seed=1)]
    [('original', (1, 2)), ('bare', (2, 3))]
    """
    k = min(k, pool_size)
    if not k:
        bare = [i for i in instructions if i.source != "original"]
        return [Plan(number, instruction, ()) for number, instruction in enumerate(bare[:n], start=1)]
    rng = random.Random(f"demos:{seed}")
    plans: list[Plan] = []
    seen: set[tuple[str, tuple[int, ...]]] = set()
    for _ in range(n * 20):  # bounded: a small pool has few distinct subsets
        if len(plans) == n:
            break
        instruction = instructions[len(plans) % len(instructions)]
        demos = tuple(sorted(rng.sample(range(pool_size), k)))
        if (instruction.text, demos) in seen:
            continue
        seen.add((instruction.text, demos))
        plans.append(Plan(len(plans) + 1, instruction, demos))
    return plans


def _literal(text: str) -> str:
    """``text`` as a template that renders to itself (demonstrations are data, not templates)."""
    if any(marker in text for marker in _JINJA_MARKERS):
        return "{% raw %}" + text.replace("{% endraw %}", "{% endraw %}{{ '{% endraw %}' }}{% raw %}") + "{% endraw %}"
    return text


@dataclass(frozen=True)
class PromptShape:
    """A prompt version as the search sees it: its instruction (the leading system message's text,
    or empty) and the messages after it (a text prompt is one user message)."""

    instruction: str
    rest: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, spec: PromptVersionSpec) -> PromptShape:
        messages = list(spec.messages) if spec.messages is not None else [{"role": "user", "content": spec.text}]
        first = messages[0] if messages else None
        if first is not None and first.get("role") in ("system", "developer") and isinstance(first["content"], str):
            return cls(first["content"], tuple(messages[1:]))
        return cls("", tuple(messages))


def spec_for(
    shape: PromptShape, instruction: Instruction, demos: Sequence[Demo], original: PromptVersionSpec
) -> PromptVersionSpec:
    """The candidate as a prompt version: the instruction as the system message (none when empty), each
    demonstration as a user and an assistant turn, then the original's other messages (templates kept);
    variables, parameters and route as the original's."""
    messages: list[dict[str, Any]] = []
    if instruction.text.strip():
        messages.append({"role": "system", "content": instruction.text})
    for demo in demos:
        messages.append({"role": "user", "content": _literal(demo.user)})
        messages.append({"role": "assistant", "content": _literal(demo.answer)})
    messages.extend(dict(m) for m in shape.rest)
    return PromptVersionSpec(
        messages=messages, variables=original.variables, parameters=original.parameters, route=original.route
    )


def answer_text(value: Any) -> str | None:
    """A row's expected output as an assistant turn: text as is, the first of a list, else its JSON."""
    if value is None:
        return None
    if isinstance(value, list):
        return answer_text(value[0]) if value else None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def user_text(rendered: Sequence[dict[str, Any]]) -> str:
    """The user side of a rendered prompt (its non-system messages) as one turn's text."""
    parts = []
    for message in rendered:
        if message.get("role") in ("system", "developer"):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(str(content))
    return "\n".join(parts)
