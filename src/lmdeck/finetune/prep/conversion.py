"""Dataset rows as chat conversations: the messages that go in and the answer that should come out.

A row's ``input`` is what a trace's request carried (``{"messages": [...]}``, a completion
``prompt``, a Responses ``input``) or what a person typed (a string, a list of messages); its
``expected`` is the answer the model gave, a person's correction, or a JSON value (for
extraction tasks: written as compact JSON). A row that cannot be read as a conversation is
dropped with a reason the data card counts::

    convert(DatasetRow(input="How many r's in 'carrot'?", expected="2", metadata={"tag": "count"}), "tag")
    # Conversation(messages=[{'role': 'user', 'content': "How many r's in 'carrot'?"}], answer='2',
    #              stratum='count', trace_id=None, source='manual')
    convert(DatasetRow(input="hi"), "tag")   # 'no_expected'

Drop reasons: ``no_expected`` (no answer, an empty one, or tool calls instead of text) and
``unusable`` (an input that holds no text conversation: images, unknown roles, empty messages).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lmdeck.finetune.prep.examples import Source
from lmdeck.local.chat_template import ROLE_TOKENS
from lmdeck.protocol.registry import DatasetRow

DropReason = Literal["no_expected", "unusable"]

_SOURCES: dict[str, Source] = {"trace": "trace", "correction": "correction", "manual": "manual"}

#: Metadata keys that mark a row as a person's correction (an annotation queue's export, a feedback correction).
_CORRECTION_KEYS = ("annotation_queue", "correction")


@dataclass(frozen=True)
class Conversation:
    """A row read as chat: ``messages`` (role/content, text only) and the wanted ``answer`` text."""

    messages: list[dict[str, str]]
    answer: str
    stratum: str | None
    trace_id: str | None
    source: Source

    def text(self) -> str:
        """Every message's content and the answer, one per line (what deduplication compares)."""
        return "\n".join([*(m["content"] for m in self.messages), self.answer])


def _content_text(content: Any) -> str | None:
    """A message's content as text: a string, or a list of text parts (``text``/``input_text``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and part.get("type") in ("text", "input_text", "output_text"):
                if not isinstance(part.get("text"), str):
                    return None
                texts.append(part["text"])
            else:
                return None  # an image, a file, audio: not text training data
        return "".join(texts)
    return None


def _messages(items: list[Any]) -> list[dict[str, str]] | None:
    messages = []
    for item in items:
        if not isinstance(item, Mapping) or item.get("role") not in ROLE_TOKENS:
            return None
        if item.get("tool_calls"):
            return None
        content = _content_text(item.get("content"))
        if content is None:
            return None
        messages.append({"role": str(item["role"]), "content": content})
    if not messages or not any(m["content"].strip() for m in messages):
        return None
    return messages


def messages_of(given: Any) -> list[dict[str, str]] | None:
    """The chat messages a row's ``input`` stands for, or None when it holds no text conversation."""
    if isinstance(given, str):
        return [{"role": "user", "content": given}] if given.strip() else None
    if isinstance(given, list):
        if len(given) == 1 and isinstance(given[0], str):  # a completion request's prompt list of one
            return messages_of(given[0])
        return _messages(given)
    if isinstance(given, Mapping):
        for key in ("messages", "prompt", "input", "text"):
            if key in given:
                return messages_of(given[key])
    return None


def answer_of(expected: Any) -> str | None:
    """The answer text of a row's ``expected``, or None when there is no usable one.

    A string is the answer; an assistant message (``{"role", "content"}``) its content (None with
    tool calls); ``{"content": ...}`` or ``{"text": ...}`` that text; any other JSON value is
    written as compact JSON.
    """
    if expected is None:
        return None
    if isinstance(expected, str):
        return expected if expected.strip() else None
    if isinstance(expected, Mapping):
        if expected.get("tool_calls"):
            return None
        if "role" in expected or set(expected) in ({"content"}, {"text"}):
            text = expected.get("content", expected.get("text"))
            return answer_of(text) if isinstance(text, str) else None
    return json.dumps(expected, ensure_ascii=False, separators=(",", ":"))


def source_of(row: DatasetRow) -> Source:
    """``metadata.source`` when it names one; else a correction when the metadata says so; else by trace id."""
    declared = row.metadata.get("source")
    if isinstance(declared, str) and declared in _SOURCES:
        return _SOURCES[declared]
    if any(key in row.metadata for key in _CORRECTION_KEYS):
        return "correction"
    return "trace" if row.trace_id else "manual"


def _as_stratum(value: Any) -> str | None:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, list):
        return ",".join(sorted(str(v) for v in value))
    return str(value)


def stratum_of(row: DatasetRow, key: str | None) -> str | None:
    """The row's stratum for metadata ``key``; None when it has no value.

    Looked up in order: ``metadata[key]``; the request's own metadata (``metadata.request_metadata[key]``,
    kept by rows cut from traces); a trace tag ``key:value``; for ``tag``/``tags``, the trace's tags.
    A list of values is one stratum (sorted, comma-joined).
    """
    if key is None:
        return None
    found = _as_stratum(row.metadata.get(key))
    if found is not None:
        return found
    request = row.metadata.get("request_metadata")
    if isinstance(request, Mapping) and (found := _as_stratum(request.get(key))) is not None:
        return found
    tags = row.metadata.get("tags")
    if isinstance(tags, list):
        prefix = f"{key}:"
        labelled = [t[len(prefix) :] for t in tags if isinstance(t, str) and t.startswith(prefix)]
        if labelled:
            return _as_stratum(labelled)
        if key in ("tag", "tags"):
            return _as_stratum([t for t in tags if isinstance(t, str)])
    return None


def convert(row: DatasetRow, stratify_by: str | None) -> Conversation | DropReason:
    """``row`` as a Conversation, or the reason it is dropped."""
    messages = messages_of(row.input)
    if messages is None:
        return "unusable"
    answer = answer_of(row.expected)
    if answer is None:
        return "no_expected"
    return Conversation(messages, answer, stratum_of(row, stratify_by), row.trace_id, source_of(row))
