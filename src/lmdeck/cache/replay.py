"""Turning answers into entries and entries back into answers.

A streamed answer is kept as its chunks (replayed exactly) plus the whole response assembled
from them (served to a client that asks for JSON); a JSON answer is kept as it is and cut into
chunks when a client asks for a stream: a role chunk, one content chunk per choice, the tool
calls, the finish reason and the usage-only chunk, as an OpenAI stream sends them::

    response = assemble("chat", chunks)            # the chat.completion the chunks spell
    chunks = chunks_of("chat", response)           # the chunks a stream of it sends
    result = replay(entry, ctx.kind, stream=True)  # Streamed (or Completed when stream=False)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from pydantic import BaseModel

from lmdeck.cache.entry import CacheEntry
from lmdeck.pipeline.context import Completed, Kind, Streamed
from lmdeck.protocol import ChatCompletionResponse, CompletionResponse
from lmdeck.protocol.chat import ChatCompletionChunk
from lmdeck.protocol.embeddings import EmbeddingResponse

_RESPONSES: dict[Kind, type[BaseModel]] = {
    "chat": ChatCompletionResponse,
    "completions": CompletionResponse,
    "embeddings": EmbeddingResponse,
}


def _merge_tool_calls(into: list[dict[str, Any]], deltas: list[Any]) -> None:
    for delta in deltas:
        if not isinstance(delta, dict):
            continue
        index = int(delta.get("index", len(into)))
        while len(into) <= index:
            into.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        call = into[index]
        if delta.get("id"):
            call["id"] = delta["id"]
        if delta.get("type"):
            call["type"] = delta["type"]
        function = delta.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""


def assemble(kind: Kind, chunks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The whole ``chat.completion``/``text_completion`` JSON that stream ``chunks`` spell out."""
    first = chunks[0] if chunks else {}
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            if kind == "chat":
                out = choices.setdefault(
                    index, {"index": index, "message": {"role": "assistant", "content": None}, "finish_reason": None}
                )
                delta = choice.get("delta") or {}
                message = out["message"]
                if delta.get("role"):
                    message["role"] = delta["role"]
                if delta.get("content") is not None:
                    message["content"] = (message["content"] or "") + delta["content"]
                if delta.get("refusal") is not None:
                    message["refusal"] = (message.get("refusal") or "") + delta["refusal"]
                if delta.get("tool_calls"):
                    _merge_tool_calls(message.setdefault("tool_calls", []), delta["tool_calls"])
            else:
                out = choices.setdefault(index, {"index": index, "text": "", "finish_reason": None})
                out["text"] += choice.get("text") or ""
            if choice.get("logprobs") is not None:
                out["logprobs"] = _merged_logprobs(out.get("logprobs"), choice["logprobs"])
            if choice.get("finish_reason"):
                out["finish_reason"] = choice["finish_reason"]
    return {
        "id": first.get("id", ""),
        "object": "chat.completion" if kind == "chat" else "text_completion",
        "created": first.get("created", 0),
        "model": first.get("model", ""),
        "choices": [choices[i] for i in sorted(choices)],
        **({"usage": usage} if usage else {}),
        **({"system_fingerprint": first["system_fingerprint"]} if first.get("system_fingerprint") else {}),
    }


def _merged_logprobs(held: Any, more: Any) -> Any:
    if isinstance(held, dict) and isinstance(more, dict):
        merged = dict(held)
        for name, values in more.items():
            if isinstance(values, list) and isinstance(merged.get(name), list):
                merged[name] = merged[name] + values
            else:
                merged[name] = values
        return merged
    return more


def chunks_of(kind: Kind, response: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream chunks of a whole ``chat.completion``/``text_completion`` JSON, usage chunk last."""
    head = {"id": response.get("id", ""), "created": response.get("created", 0), "model": response.get("model", "")}
    if response.get("system_fingerprint"):
        head["system_fingerprint"] = response["system_fingerprint"]
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    out: list[dict[str, Any]] = []
    for choice in response.get("choices") or []:
        index = choice.get("index", 0)
        if kind == "chat":
            message = choice.get("message") or {}
            delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": message.get("content")}
            if message.get("refusal") is not None:
                delta["refusal"] = message["refusal"]
            if message.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            body: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": None}
        else:
            body = {"index": index, "text": choice.get("text", ""), "finish_reason": None}
        if choice.get("logprobs") is not None:
            body["logprobs"] = choice["logprobs"]
        out.append({**head, "object": obj, "choices": [body]})
        end = (
            {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
            if kind == "chat"
            else {
                "index": index,
                "text": "",
                "finish_reason": choice.get("finish_reason"),
            }
        )
        out.append({**head, "object": obj, "choices": [end]})
    if response.get("usage"):
        out.append({**head, "object": obj, "choices": [], "usage": response["usage"]})
    return out


async def _replayed(kind: Kind, chunks: list[dict[str, Any]]) -> AsyncIterator[BaseModel]:
    model = ChatCompletionChunk if kind == "chat" else CompletionResponse
    for chunk in chunks:
        yield model.model_validate(chunk)


def replay(entry: CacheEntry, kind: Kind, *, stream: bool, headers: dict[str, str]) -> Completed | Streamed:
    """The entry's answer as the client asked for it: its chunks as a stream, else the whole response."""
    if stream:
        chunks = entry.chunks if entry.chunks is not None else chunks_of(kind, entry.response)
        return Streamed(_replayed(kind, chunks), headers)
    return Completed(_RESPONSES[kind].model_validate(entry.response), headers)
