"""Where the text a guardrail checks sits in a request, an answer and a stream chunk, and how to rewrite it.

    for piece in request_texts(body):            # Piece(where=("messages", 0, None), role="user", text=...)
        ...
    body = with_request_texts(body, {("messages", 0, None): "masked text"})

A chat message's text is its ``content`` string, or each ``text`` part of a multi-part
content (``where`` names the part); a legacy completion's is its ``prompt`` (each one of a
list); an embedding request's each ``input`` string. Answers: each choice's message
``content`` (chat) or ``text`` (completions); stream chunks: each choice's ``delta.content``
or ``text``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from lmdeck.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

#: ``(field, index, part)``: ``("messages", 2, None)``, ``("messages", 0, 1)`` (the second part), ``("prompt", 0, None)``.
Where = tuple[str, int, int | None]


@dataclass(frozen=True)
class Piece:
    """One text of a request, where it is, and the role of its message (None outside chat)."""

    where: Where
    text: str
    role: str | None = None


def request_texts(body: BaseModel) -> list[Piece]:
    """Every non-empty text of a request body, in order."""
    pieces: list[Piece] = []
    if isinstance(body, ChatCompletionRequest):
        for i, message in enumerate(body.messages):
            if isinstance(message.content, str):
                if message.content:
                    pieces.append(Piece(("messages", i, None), message.content, message.role))
            elif isinstance(message.content, list):
                for j, part in enumerate(message.content):
                    if part.get("type") == "text" and isinstance(part.get("text"), str) and part["text"]:
                        pieces.append(Piece(("messages", i, j), part["text"], message.role))
    elif isinstance(body, CompletionRequest):
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        pieces.extend(Piece(("prompt", i, None), p) for i, p in enumerate(prompts) if isinstance(p, str) and p)
    elif isinstance(body, EmbeddingRequest):
        inputs = [body.input] if isinstance(body.input, str) else body.input
        pieces.extend(Piece(("input", i, None), p) for i, p in enumerate(inputs) if isinstance(p, str) and p)
    return pieces


def with_request_texts(body: BaseModel, texts: Mapping[Where, str]) -> Any:
    """A copy of ``body`` with the texts at ``texts``' places replaced."""
    if not texts:
        return body
    if isinstance(body, ChatCompletionRequest):
        messages = list(body.messages)
        for (_, i, part), text in texts.items():
            message = messages[i]
            if part is None:
                messages[i] = message.model_copy(update={"content": text})
            else:
                parts = [dict(p) for p in message.content] if isinstance(message.content, list) else []
                parts[part] = {**parts[part], "text": text}
                messages[i] = message.model_copy(update={"content": parts})
        return body.model_copy(update={"messages": messages})
    if isinstance(body, CompletionRequest):
        if isinstance(body.prompt, str):
            return body.model_copy(update={"prompt": texts.get(("prompt", 0, None), body.prompt)})
        prompts = [texts.get(("prompt", i, None), p) for i, p in enumerate(body.prompt)]
        return body.model_copy(update={"prompt": prompts})
    if isinstance(body, EmbeddingRequest):
        if isinstance(body.input, str):
            return body.model_copy(update={"input": texts.get(("input", 0, None), body.input)})
        inputs = [texts.get(("input", i, None), p) for i, p in enumerate(body.input)]
        return body.model_copy(update={"input": inputs})
    return body


def answer_texts(response: BaseModel) -> list[str]:
    """Each choice's answer text (chat ``message.content`` or completion ``text``), by choice position."""
    out: list[str] = []
    for choice in getattr(response, "choices", None) or []:
        message = getattr(choice, "message", None)
        if message is None and isinstance(choice, dict):
            message = choice.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            out.append(content if isinstance(content, str) else "")
        elif isinstance(choice, dict):
            text = choice.get("text")
            out.append(text if isinstance(text, str) else "")
        else:
            out.append("")
    return out


def rewrite_answer(response: BaseModel, rewrite: Callable[[int, str], str]) -> BaseModel:
    """A copy of ``response`` with each choice's answer text replaced by ``rewrite(choice_index, text)``."""
    choices: list[Any] = []
    changed = False
    for position, choice in enumerate(getattr(response, "choices", None) or []):
        if isinstance(choice, BaseModel) and isinstance(getattr(choice, "message", None), dict):
            message = dict(choice.message)  # type: ignore[attr-defined]
            if isinstance(message.get("content"), str):
                new = rewrite(position, message["content"])
                changed = changed or new != message["content"]
                message["content"] = new
            choices.append(choice.model_copy(update={"message": message}))
        elif isinstance(choice, dict):
            choices.append(_rewrite_choice_dict(choice, position, rewrite, "message"))
            changed = True
        else:
            choices.append(choice)
    return response.model_copy(update={"choices": choices}) if changed else response


def _rewrite_choice_dict(choice: dict[str, Any], position: int, rewrite: Callable[[int, str], str], key: str) -> Any:
    out = dict(choice)
    inner = out.get(key)
    if isinstance(inner, dict) and isinstance(inner.get("content"), str):
        out[key] = {**inner, "content": rewrite(position, inner["content"])}
    if isinstance(out.get("text"), str):
        out["text"] = rewrite(position, out["text"])
    return out


def chunk_texts(chunk: BaseModel) -> dict[int, str]:
    """The new text of each choice in a stream chunk, by the choice's ``index``."""
    out: dict[int, str] = {}
    for choice in getattr(chunk, "choices", None) or []:
        if not isinstance(choice, dict):
            continue
        index = int(choice.get("index") or 0)
        delta = choice.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            out[index] = out.get(index, "") + delta["content"]
        if isinstance(choice.get("text"), str):
            out[index] = out.get(index, "") + choice["text"]
    return out


def rewrite_chunk(chunk: BaseModel, rewrite: Callable[[int, str], str]) -> BaseModel:
    """A copy of ``chunk`` with each choice's new text replaced by ``rewrite(choice_index, text)``."""
    choices = []
    for choice in getattr(chunk, "choices", None) or []:
        if isinstance(choice, dict):
            index = int(choice.get("index") or 0)
            choices.append(_rewrite_choice_dict(choice, index, rewrite, "delta"))
        else:
            choices.append(choice)
    return chunk.model_copy(update={"choices": choices})
