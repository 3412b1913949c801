"""The texts drift reads from a stored trace: what the caller asked and what the model answered.

    prompt_text({"messages": [{"role": "user", "content": "What is 2+2?"}]})      # "What is 2+2?"
    answer_text({"choices": [{"message": {"content": "4"}}]})                   # "4"
    is_refusal({"choices": [{"message": {"content": "I'm sorry, I can't help with that."}}]})   # True

A prompt is the text of the request's user messages (system prompts are the application's, not its
users' input), or a completion request's ``prompt``. An answer is the first choice's text; a streamed
answer is stored as ``{"content": ...}``. A refusal is an answer with OpenAI's ``refusal`` field set,
a ``content_filter`` finish, or English text that opens with a refusal phrase (``I'm sorry``,
``I can't``, ``As an AI`` ...): a heuristic, not a classifier; it reads the first 200 characters.
"""

from __future__ import annotations

import re
from typing import Any

_REFUSAL = re.compile(
    r"^\W*(?:i\s*['\u2019]?m\s+sorry|i\s+am\s+sorry|sorry,|i\s+apologi[sz]e|"
    r"i\s+(?:can\s*['\u2019]?t|cannot|can\s+not|won\s*['\u2019]?t|will\s+not|am\s+unable|['\u2019]m\s+unable|am\s+not\s+able)\b|"
    r"as\s+an\s+ai\b|i\s+must\s+decline|unfortunately,?\s+i\s+(?:can\s*['\u2019]?t|cannot))",
    re.IGNORECASE,
)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def prompt_text(body: Any) -> str | None:
    """The user's text in a stored request body; None when it holds none (a redacted or non-text request)."""
    if not isinstance(body, dict):
        return None
    messages = body.get("messages")
    if isinstance(messages, list):
        texts = [_content_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        text = "\n".join(t for t in texts if t)
        return text or None
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt or None
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return "\n".join(prompt) or None
    return None


def _first_choice(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict):
        return None
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


def answer_text(body: Any) -> str | None:
    """The answer's text in a stored response body; None when it holds none (redacted, or tool calls only)."""
    if isinstance(body, dict) and isinstance(body.get("content"), str) and "choices" not in body:
        return body["content"] or None  # a streamed answer, stored whole
    choice = _first_choice(body)
    if choice is None:
        return None
    message = choice.get("message")
    if isinstance(message, dict):
        text = _content_text(message.get("content")) or (message.get("refusal") or "")
        return text or None
    text = choice.get("text")
    return text if isinstance(text, str) and text else None


def is_refusal(body: Any) -> bool | None:
    """Whether the stored answer refuses; None when there is no answer to judge."""
    choice = _first_choice(body)
    if choice is not None:
        message = choice.get("message")
        if isinstance(message, dict) and message.get("refusal"):
            return True
        if choice.get("finish_reason") == "content_filter":
            return True
    text = answer_text(body)
    if text is None:
        return None
    return _REFUSAL.match(text[:200]) is not None
