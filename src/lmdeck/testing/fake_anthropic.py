"""A FAKE Anthropic Messages endpoint (``POST /v1/messages``), for testing the anthropic provider.

It is strict where the real API is strict (``max_tokens`` required, roles alternate starting
with ``user``, system text only in ``system``, ``x-api-key`` and ``anthropic-version`` sent)
so that a translation mistake fails a test, and it answers deterministically: the last user
text is echoed; a ``tool_result`` is answered with ``tool said: ...``; when ``tools`` are
given and the last user text names one, a ``tool_use`` block calls it. Streams follow the
real event sequence (message_start, content_block_start/delta/stop, message_delta,
message_stop, with a ``ping``). ``requests`` keeps every body received::

    app = FakeAnthropic(api_key="k")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fake")
    app.force_status = [529]      # the next request fails with 529 (overloaded)
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from lmdeck.testing.fake_content import pieces, words


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message}}, status_code=status)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")


def _problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "model: field required"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    expected = "user"
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: must be 'user' or 'assistant' (system text goes in 'system')"
        if role != expected:
            return f"messages.{i}: roles must alternate, starting with user"
        expected = "assistant" if role == "user" else "user"
    return None


class FakeAnthropic:
    """The fake Messages API as an ASGI app."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.force_status: list[int] = []
        self._ids = itertools.count(1)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        if request.method != "POST" or request.url.path != "/v1/messages":
            return _error(404, "not_found_error", f"no route {request.method} {request.url.path}")
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.requests.append(body if isinstance(body, dict) else {"_raw": raw.decode(errors="replace")})
        self.headers.append(dict(request.headers))
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version header is required")
        if self.force_status:
            status = self.force_status.pop(0)
            kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
            return _error(status, kind, f"fake anthropic forced status {status}")
        problem = _problem(body)
        if problem:
            return _error(400, "invalid_request_error", problem)
        message = self._message(body)
        if body.get("stream"):
            return StreamingResponse(self._events(message), media_type="text/event-stream")
        return JSONResponse(message)

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        last = messages[-1]
        content = last.get("content")
        blocks = content if isinstance(content, list) else []
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        user_text = _text_of(content)
        input_tokens = words(_text_of(body.get("system") or "")) + sum(words(_text_of(m["content"])) for m in messages)
        out_blocks: list[dict[str, Any]]
        tool = next(
            (t for t in body.get("tools") or [] if t.get("name") and t["name"].lower() in user_text.lower()), None
        )
        if results:
            text = "tool said: " + _text_of(results[0].get("content"))
            out_blocks, stop = [{"type": "text", "text": text}], "end_turn"
        elif tool is not None:
            props = (tool.get("input_schema") or {}).get("properties") or {}
            args = {k: user_text for k, v in props.items() if (v or {}).get("type") == "string"}
            call = {"type": "tool_use", "id": f"toolu_fake_{next(self._ids)}", "name": tool["name"], "input": args}
            out_blocks, stop = [{"type": "text", "text": "calling"}, call], "tool_use"
        else:
            text, stop = user_text, "end_turn"
            for seq in body.get("stop_sequences") or []:
                if seq in text:
                    text, stop = text[: text.index(seq)], "stop_sequence"
            if words(text) > body["max_tokens"]:
                text, stop = "".join(pieces(text)[: body["max_tokens"]]).rstrip(), "max_tokens"
            out_blocks = [{"type": "text", "text": text}]
        output_tokens = sum(words(b.get("text", "")) + (1 if b["type"] == "tool_use" else 0) for b in out_blocks)
        return {
            "id": f"msg_fake_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": out_blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_input_tokens": 2},
        }

    async def _events(self, message: dict[str, Any]) -> Any:
        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **data}) + b"\n\n"

        start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
        yield event("message_start", {"message": start})
        yield event("ping", {})
        for i, block in enumerate(message["content"]):
            if block["type"] == "text":
                yield event("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
                for piece in pieces(block["text"]):
                    yield event("content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": piece}})
            else:
                head = {**block, "input": {}}
                yield event("content_block_start", {"index": i, "content_block": head})
                args = orjson.dumps(block["input"]).decode()
                for part in (args[: len(args) // 2], args[len(args) // 2 :]):
                    delta = {"type": "input_json_delta", "partial_json": part}
                    yield event("content_block_delta", {"index": i, "delta": delta})
            yield event("content_block_stop", {"index": i})
        end = {"stop_reason": message["stop_reason"], "stop_sequence": None}
        yield event("message_delta", {"delta": end, "usage": {"output_tokens": message["usage"]["output_tokens"]}})
        yield event("message_stop", {})
