"""Resuming a committed stream on another target, so that the client's one stream carries on.

After a stream's commit point (see :mod:`lmdeck.gateway.routing.stream_commit`) its chunks
have reached the client. When its upstream then fails, the dispatcher asks another target
to *continue* the answer: the text sent so far goes upstream as a final assistant message
(Anthropic's prefill, vLLM's ``continue_final_message``; see
:class:`lmdeck.providers.base.ContinuingProvider`) and what comes back is appended to the
client's stream. :class:`StreamTranscript` keeps what the client has been sent and makes
the continuation's chunks look like the rest of the same stream::

    transcript = StreamTranscript(resumable=True)
    for chunk in first_upstream:
        send(transcript.accept(chunk))
    # ... the upstream fails after "The capital of "
    request = transcript.continuation(body)          # + {"role": "assistant", "content": "The capital of "}
    transcript.cut()
    for chunk in provider.stream_continuation(request):
        if (out := transcript.accept(chunk, continuing=True)) is not None:
            send(out)                               # same id, model and created; no second role chunk

A stream can be resumed only while it is a single chat choice of plain text: once a tool
call, reasoning or a second choice has been sent, or for ``/v1/completions``, a failure ends
the stream with an error event. A failure after every choice has its ``finish_reason``
loses nothing the client needs, and the stream simply ends.

The usage reported at the end of a resumed stream adds up what every upstream call used:
the continuation's own usage, plus, for each cut stream, the prompt and the pieces it
produced (estimated, since a cut stream reports none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from lmdeck.protocol import ChatCompletionRequest
from lmdeck.protocol.chat import ChatMessage

#: Delta fields that cannot be continued by a prefill (anything but plain text).
NOT_RESUMABLE = ("tool_calls", "function_call", "reasoning_content", "reasoning", "refusal", "audio")


@dataclass(frozen=True)
class CutSegment:
    """One upstream stream that failed after its commit point."""

    offset: int
    pieces: int


@dataclass
class StreamTranscript:
    """What a stream's client has been sent, across the upstream streams that made it.

    ``offset`` counts the content pieces sent (about one token each); ``text`` is their text.
    """

    resumable: bool = True
    why_not: str | None = None
    id: str | None = None
    model: str | None = None
    created: int | None = None
    parts: list[str] = field(default_factory=list)
    offset: int = 0
    finished: bool = False
    cut_segments: list[CutSegment] = field(default_factory=list)
    segment_start: int = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def refuse(self, why: str) -> None:
        if self.resumable:
            self.resumable, self.why_not = False, why

    def accept(self, chunk: BaseModel, continuing: bool = False) -> BaseModel | None:
        """The chunk to send the client (None: send nothing), noting what it carries.

        A chunk of a continuation takes the stream's ``id``, ``model`` and ``created``, and
        loses the role announcement the client already had.
        """
        if self.id is None:
            self.id = getattr(chunk, "id", None)
            self.model = getattr(chunk, "model", None)
            self.created = getattr(chunk, "created", None)
        if continuing:
            relabelled = self._relabel(chunk)
            if relabelled is None:
                return None
            chunk = relabelled
        self._note(chunk)
        return chunk

    def _note(self, chunk: BaseModel) -> None:
        for choice in getattr(chunk, "choices", None) or []:
            if not isinstance(choice, dict):
                continue
            if choice.get("index", 0) != 0:
                self.refuse("the stream has more than one choice")
            if choice.get("text"):
                self.refuse("a completions stream cannot be continued")
            delta = choice.get("delta") or {}
            if any(delta.get(name) for name in NOT_RESUMABLE):
                self.refuse("the answer has more than plain text (tool calls or reasoning)")
            if delta.get("content"):
                self.parts.append(str(delta["content"]))
                self.offset += 1
            if choice.get("finish_reason") is not None and choice.get("index", 0) == 0:
                self.finished = True

    def _relabel(self, chunk: BaseModel) -> BaseModel | None:
        choices: list[dict[str, Any]] = []
        for choice in getattr(chunk, "choices", None) or []:
            delta = {k: v for k, v in (choice.get("delta") or {}).items() if k != "role"}
            if not any(v not in (None, "") for v in delta.values()) and choice.get("finish_reason") is None:
                continue
            choices.append({**choice, "delta": delta})
        usage = getattr(chunk, "usage", None)
        if not choices and usage is None:
            return None
        update: dict[str, Any] = {"id": self.id, "model": self.model, "created": self.created, "choices": choices}
        if usage is not None and self.cut_segments:
            update["usage"] = self._merged_usage(usage)
        return chunk.model_copy(update=update)

    def _merged_usage(self, usage: Any) -> Any:
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        # The continuation's prompt holds the original prompt plus the text sent before it.
        original_prompt = max(prompt - self.segment_start, 0)
        prompt += sum(original_prompt + cut.offset for cut in self.cut_segments)
        completion += sum(cut.pieces for cut in self.cut_segments)
        return usage.model_copy(
            update={"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        )

    def cut(self) -> CutSegment:
        """Note that the current upstream stream failed here; the next chunks come from a continuation."""
        segment = CutSegment(offset=self.segment_start, pieces=self.offset - self.segment_start)
        self.cut_segments.append(segment)
        self.segment_start = self.offset
        return segment

    def continuation(self, body: Any) -> ChatCompletionRequest | None:
        """The request that continues this answer, or None when it cannot be continued.

        Its last message is the text sent so far, as the assistant's; its token limit is what
        is left of the client's. With nothing sent yet, it is the request itself.
        """
        if not self.resumable or self.finished or not isinstance(body, ChatCompletionRequest):
            return None
        if (body.n or 1) != 1:
            return None
        update: dict[str, Any] = {}
        for name in ("max_tokens", "max_completion_tokens"):
            limit = getattr(body, name)
            if limit is not None:
                if limit - self.offset < 1:
                    return None
                update[name] = limit - self.offset
        if self.parts:
            update["messages"] = [*body.messages, ChatMessage(role="assistant", content=self.text)]
        return body.model_copy(update=update) if update else body
