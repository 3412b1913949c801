"""``/v1/moderations`` schemas: OpenAI's moderation request and response.

    {"input": "text" | ["text", ...], "model": "<a route or a guardrail definition>"}   # model optional

Each result carries OpenAI's thirteen categories (:data:`OPENAI_CATEGORIES`), which lmdeck's
guardrails do not judge (always ``false`` and ``0``), and one category per guardrail lmdeck ran,
named ``lmdeck/<guardrail type>`` (``lmdeck/pii``, ``lmdeck/prompt_injection``...) with the
guardrail's own verdict and score (see docs/moderations.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: OpenAI's moderation categories (``omni-moderation``); lmdeck's guardrails judge none of them.
OPENAI_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


class ModerationRequest(BaseModel):
    """``POST /v1/moderations``; ``input`` of text only (image parts are refused as unknown shapes)."""

    model_config = ConfigDict(extra="forbid")

    input: str | list[str] = Field(description="a text or a list of texts (at most 64)")
    model: str | None = Field(default=None, description="a route (its guardrails) or a guardrail definition")


class ModerationResult(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]


class ModerationResponse(BaseModel):
    id: str
    object: Literal["moderation"] = "moderation"
    model: str
    results: list[ModerationResult]
