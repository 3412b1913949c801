"""A FAKE Anthropic Messages API (``POST /v1/messages``) for tests: strict, deterministic, scriptable.

It refuses what the real API refuses (:mod:`lmdeck.testing.anthropic_rules`, answering 400
``invalid_request_error`` with the real API's wording), checks ``x-api-key`` and
``anthropic-version``, and answers deterministically: the last user text is echoed; a
``tool_result`` is answered with ``tool said: ...``; a tool named in the last user text (or
forced by ``tool_choice``) is called. A final assistant turn is a prefill the answer goes on
from: the rest of the echo when the prefill begins it (so a continued answer can be checked
word for word), else the echo after a space. Streams follow the real event sequence
(message_start, ping, content_block_start/delta/stop, message_delta, message_stop).
``POST /v1/messages/count_tokens`` answers ``{"input_tokens": N}``, N counted as usage counts the prompt.

Prompt caching is simulated: a block with ``cache_control`` ends a cacheable prefix (tools,
then system, then messages); the first request with a prefix reports it as
``cache_creation_input_tokens`` (split by ``ttl`` in ``cache_creation``), later ones as
``cache_read_input_tokens``. Unlike the real API there is no minimum prefix length. A "token"
is a whitespace-separated word.

``script`` scripts the next outcomes, one per request: a status (``529``, ``"429:2"`` with a
``retry-after``), ``"error_event:overloaded_error"`` (a 200 stream whose ``error`` event comes
right after ``message_start``, before any content) or ``"error_event_after_text:api_error"``
(after the first text delta). In process::

    app = FakeAnthropic(api_key="k")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fake")
    app.script = ["error_event:overloaded_error"]

As a server: ``python -m lmdeck.testing.fake_anthropic --port 9200``, scripted through
``POST /_fake/config {"script": [...]}`` (see :func:`lmdeck.testing.servers.start_fake_anthropic`).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from lmdeck.testing.anthropic_rules import problem
from lmdeck.testing.fake_content import pieces, words

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
STATUS_OF = {kind: status for status, kind in ERROR_TYPES.items()}


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(b.get("text", "")) for b in content or [] if isinstance(b, dict) and b.get("type") == "text")


def _block_tokens(block: dict[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return words(str(block.get("text", "")))
    if kind == "tool_result":
        return words(_text_of(block.get("content")))
    if kind == "tool_use":
        return words(orjson.dumps(block.get("input") or {}).decode())
    return 0


def prompt_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The prompt as Anthropic caches it: tools, then system, then each message's blocks, in order."""
    blocks: list[dict[str, Any]] = [{"type": "tool", **t} for t in body.get("tools") or []]
    system = body.get("system")
    blocks += [{"type": "text", "text": system}] if isinstance(system, str) else list(system or [])
    for message in body["messages"]:
        content = message["content"]
        blocks += [{"type": "text", "text": content}] if isinstance(content, str) else content
    return blocks


class PromptCache:
    """Which prompt prefixes have been written, and the usage a new prompt gets."""

    def __init__(self) -> None:
        self.written: set[str] = set()

    def usage(self, blocks: list[dict[str, Any]]) -> dict[str, Any]:
        total, read, fresh = 0, 0, {"5m": 0, "1h": 0}
        digest = hashlib.sha256()
        segment = 0
        pending: list[tuple[str, int, str]] = []  # (prefix key, tokens up to it, ttl)
        for block in blocks:
            tokens = _block_tokens(block)
            total += tokens
            segment += tokens
            digest.update(orjson.dumps({k: v for k, v in block.items() if k != "cache_control"}))
            control = block.get("cache_control")
            if isinstance(control, dict):
                pending.append((digest.hexdigest(), total, str(control.get("ttl", "5m"))))
        hit = max((i for i, (key, _, _) in enumerate(pending) if key in self.written), default=-1)
        if hit >= 0:
            read = pending[hit][1]
        done = read
        for key, upto, ttl in pending[hit + 1 :]:
            fresh[ttl] += upto - done
            done = upto
            self.written.add(key)
        written = fresh["5m"] + fresh["1h"]
        return {
            "input_tokens": total - read - written,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": fresh["5m"], "ephemeral_1h_input_tokens": fresh["1h"]},
        }


def _after_prefill(echo: str, prefill: str) -> str:
    if not prefill:
        return echo
    return echo[len(prefill) :] if echo.startswith(prefill) else " " + echo


class FakeAnthropic:
    """The fake Messages API as an ASGI app; ``requests`` and ``headers`` keep what it received."""

    def __init__(self, api_key: str | None = None, script: Sequence[int | str] = ()) -> None:
        self.api_key = api_key
        self.script: list[int | str] = list(script)
        self.requests: list[dict[str, Any]] = []
        self.counted: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.cache = PromptCache()
        self._ids = itertools.count(1)

    def reset(self) -> None:
        self.script, self.requests, self.headers, self.cache = [], [], [], PromptCache()
        self.counted = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        if request.url.path.startswith("/_fake/"):
            response = await self._control(request)
        else:
            response = await self._handle(request)
        await response(scope, receive, send)

    async def _control(self, request: Request) -> Response:
        path = request.url.path.removeprefix("/_fake/")
        if path == "health":
            return JSONResponse({"status": "ok", "fake": "anthropic"})
        if path == "requests":
            return JSONResponse(self.requests)
        if path == "counted":
            return JSONResponse(self.counted)
        if path == "reset" and request.method == "POST":
            self.reset()
            return JSONResponse({"script": []})
        if path == "config" and request.method == "POST":
            changes = orjson.loads(await request.body() or b"{}")
            if "script" in changes:
                self.script = list(changes["script"])
            if "api_key" in changes:
                self.api_key = changes["api_key"]
            return JSONResponse({"script": self.script, "api_key": self.api_key})
        return _error(404, "not_found_error", f"no control endpoint {request.method} {request.url.path}")

    async def _count_tokens(self, request: Request) -> Response:
        """A FAKE ``/v1/messages/count_tokens``: the prompt's words (tools, system, messages), as usage counts them."""
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        self.counted.append(body if isinstance(body, dict) else {})
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return _error(401, "authentication_error", "invalid x-api-key")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            return _error(400, "invalid_request_error", "model and messages are required")
        extra = sorted(set(body) - {"model", "messages", "system", "tools", "tool_choice", "thinking"})
        if extra:
            return _error(400, "invalid_request_error", f"{extra[0]}: Extra inputs are not permitted")
        return JSONResponse({"input_tokens": sum(_block_tokens(b) for b in prompt_blocks(body))})

    async def _handle(self, request: Request) -> Response:
        if request.method == "POST" and request.url.path == "/v1/messages/count_tokens":
            return await self._count_tokens(request)
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
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        outcome = str(self.script.pop(0)) if self.script else "200"
        streaming = isinstance(body, dict) and bool(body.get("stream"))
        if outcome.startswith("error_event"):
            kind = outcome.partition(":")[2] or "overloaded_error"
            if not streaming:
                return _error(STATUS_OF.get(kind, 500), kind, f"fake anthropic scripted {kind}")
        elif outcome != "200":
            status_text, _, retry_after = outcome.partition(":")
            status = int(status_text)
            headers = {"retry-after": retry_after} if retry_after else None
            kind = ERROR_TYPES.get(status, "api_error")
            return _error(status, kind, f"fake anthropic forced status {status}", headers)
        refused = problem(body)
        if refused:
            return _error(400, "invalid_request_error", refused)
        assert isinstance(body, dict)
        message = self._message(body)
        if streaming:
            return StreamingResponse(self._events(message, outcome), media_type="text/event-stream")
        return JSONResponse(message)

    def _tool_call(self, body: dict[str, Any], user_text: str) -> dict[str, Any] | None:
        tools = [t for t in body.get("tools") or [] if t.get("name")]
        choice = body.get("tool_choice") or {}
        tool = None
        if choice.get("type") == "tool":
            tool = next((t for t in tools if t["name"] == choice.get("name")), None)
        elif choice.get("type") == "any":
            tool = tools[0] if tools else None
        elif choice.get("type") != "none":
            tool = next((t for t in tools if t["name"].lower() in user_text.lower()), None)
        if tool is None:
            return None
        props = (tool.get("input_schema") or {}).get("properties") or {}
        args = {k: user_text for k, v in props.items() if (v or {}).get("type") == "string"} if props else {}
        if not props:
            args = {"echo": user_text}
        return {"type": "tool_use", "id": f"toolu_fake_{next(self._ids)}", "name": tool["name"], "input": args}

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        last = messages[-1]
        prefill = _text_of(last.get("content")) if last["role"] == "assistant" else ""
        asked = next((m for m in reversed(messages) if m["role"] == "user"), last)
        content = asked.get("content")
        blocks = content if isinstance(content, list) else []
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        user_text = _text_of(content)
        out_blocks: list[dict[str, Any]]
        call = None if results else self._tool_call(body, user_text)
        if results:
            text = "tool said: " + _text_of(results[0].get("content"))
            out_blocks, stop = [{"type": "text", "text": text}], "end_turn"
        elif call is not None:
            # A forced tool call (tool_choice any or tool) comes without text before it, as in the real API.
            forced = (body.get("tool_choice") or {}).get("type") in ("any", "tool")
            out_blocks, stop = ([] if forced else [{"type": "text", "text": "calling"}]) + [call], "tool_use"
        else:
            # After a prefill the answer continues it: the rest of the echo, or the echo after a space.
            text, stop = _after_prefill(user_text, prefill), "end_turn"
            for seq in body.get("stop_sequences") or []:
                if seq in text:
                    text, stop = text[: text.index(seq)], "stop_sequence"
            if words(text) > body["max_tokens"]:
                text, stop = "".join(pieces(text)[: body["max_tokens"]]).rstrip(), "max_tokens"
            out_blocks = [{"type": "text", "text": text}]
        output_tokens = sum(words(b.get("text", "")) + (1 if b["type"] == "tool_use" else 0) for b in out_blocks)
        usage = self.cache.usage(prompt_blocks(body))
        return {
            "id": f"msg_fake_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": out_blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": output_tokens},
        }

    async def _events(self, message: dict[str, Any], outcome: str) -> AsyncIterator[bytes]:
        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **data}) + b"\n\n"

        kind = outcome.partition(":")[2] or "overloaded_error"
        failure = event("error", {"error": {"type": kind, "message": f"fake anthropic scripted {kind}"}})
        start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
        yield event("message_start", {"message": start})
        yield event("ping", {})
        if outcome.startswith("error_event:"):
            yield failure
            return
        for i, block in enumerate(message["content"]):
            if block["type"] == "text":
                yield event("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
                for piece in pieces(block["text"]):
                    yield event("content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": piece}})
                    if outcome.startswith("error_event_after_text:"):
                        yield failure
                        return
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


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(prog="python -m lmdeck.testing.fake_anthropic", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed at start)")
    p.add_argument("--api-key", default=None)
    p.add_argument("--script", default="", help="comma-separated outcomes, e.g. 529,error_event:overloaded_error")
    args = p.parse_args(argv)
    script = [s.strip() for s in args.script.split(",") if s.strip()]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(512)
    print(f"fake anthropic listening on http://{args.host}:{sock.getsockname()[1]}", file=sys.stdout, flush=True)
    app = FakeAnthropic(api_key=args.api_key, script=script)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
