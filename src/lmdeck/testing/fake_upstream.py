"""A FAKE OpenAI-compatible upstream, for tests, benchmarks and demos. It is never a default route.

It answers ``/v1/chat/completions`` (plain and streamed), ``/v1/completions``,
``/v1/embeddings``, ``/v1/models`` and a small ``/v1/responses`` (whole responses, text only) with deterministic content (see
:mod:`lmdeck.testing.fake_content`), and misbehaves on request: latency, slow token
streams, random failures, a script of forced statuses, connection resets, hangs, streams
dropped or failed with an error event after some tokens. It honours vLLM's
``continue_final_message`` (with ``add_generation_prompt: false``), so resumed streams can
be checked word for word. Like vLLM's runtime LoRA API, ``POST /v1/load_lora_adapter`` takes
``{"lora_name", "lora_path"}`` and answers 400 "already been loaded" on a repeat; it only records
the adapter (answers are the same whatever the model).

Run it::

    python -m lmdeck.testing.fake_upstream --port 8100 --latency-ms 20 --script 500,429:1,200

or in-process as an ASGI app::

    app = FakeUpstream(FakeConfig(tokens_per_s=50))
    httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://fake/v1")

Control endpoints change it while it runs:

- ``POST /_fake/config`` merges a JSON object into :class:`FakeConfig` (a new ``script``
  replaces the rest of the old one) and returns the whole configuration;
- ``GET /_fake/config``; ``GET /_fake/stats`` (request counts per path, outcomes, in flight, and
  ``disconnects``: requests whose client left while the fake was still on them);
- ``GET /_fake/requests`` (the last requests: path, body, headers, ``received_at`` and ``finished_at``
  in epoch seconds);
- ``POST /_fake/reset`` (back to the start configuration, counters cleared);
- ``GET /_fake/loras`` (the adapters loaded: name -> path, cleared by a reset as by a vLLM restart);
- ``GET /_fake/health``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from lmdeck.testing.fake_behaviour import INFERENCE_PATHS, MID_STREAM, Action, FakeConfig, FakeState
from lmdeck.testing.fake_content import (
    Reply,
    chat_reply,
    completion_replies,
    continuation_problem,
    embedding_inputs,
    embedding_vector,
    encode_vector,
    last_user_text,
    pieces,
)

#: Headers kept in ``/_fake/requests``: enough to check what a provider sent.
RECORDED_HEADERS = (
    "authorization",
    "content-type",
    "user-agent",
    "x-request-id",
    "traceparent",
    "tracestate",
    "anthropic-version",
)


class Exchange:
    """One HTTP request to the fake and the ways to answer it."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.started = False
        #: This request's entry in ``/_fake/requests`` once its body is read.
        self.entry: dict[str, Any] | None = None

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    def header(self, name: str) -> str | None:
        key = name.lower().encode()
        for k, v in self.scope.get("headers", []):
            if k.lower() == key:
                return bytes(v).decode("latin-1")
        return None

    async def body(self) -> bytes:
        chunks = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def start(self, status: int, headers: dict[str, str]) -> None:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await self.send({"type": "http.response.start", "status": status, "headers": raw})
        self.started = True

    async def json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = orjson.dumps(payload)
        await self.start(
            status, {"content-type": "application/json", "content-length": str(len(body)), **(headers or {})}
        )
        await self.send({"type": "http.response.body", "body": body})

    async def error(
        self, status: int, message: str, headers: dict[str, str] | None = None, error: dict[str, Any] | None = None
    ) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        if status == 429:
            kind = "rate_limit_error"
        body = error or {"message": message, "type": kind, "param": None, "code": None}
        await self.json(status, {"error": body}, headers)

    async def wait_disconnect(self) -> None:
        """Block until the client goes away (a hang that ends when the client gives up)."""
        while True:
            message: Message = await self.receive()
            if message["type"] == "http.disconnect":
                return

    async def drop(self, reset: bool = True) -> None:
        """Drop the connection: with a TCP reset, or (``reset=False``) by closing it mid-response.

        A reset may discard what the client has not read yet; a close delivers everything
        sent, then the client finds the response body cut short. ASGI has no message for
        either, so it reaches the transport through uvicorn's request cycle object, which
        ``send`` is bound to. Elsewhere it raises instead.
        """
        cycle = getattr(self.send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            raise ConnectionResetError("fake upstream dropped the connection")
        if not reset:
            transport.close()
            await self.wait_disconnect()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        transport.abort()
        await self.wait_disconnect()


Handler = Callable[[Exchange], Awaitable[None]]


def _sse(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def responses_text(content: Any) -> str:
    """The text of a Responses message item's ``content`` (a string, or ``input_text``/``output_text`` parts)."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(
        str(p.get("text", "")) for p in parts if isinstance(p, dict) and p.get("type") in ("input_text", "output_text")
    )


class FakeUpstream:
    """The fake upstream as a pure ASGI app.

    >>> app = FakeUpstream(FakeConfig(script=[503]))
    >>> app.state.config.script[0].status
    503
    """

    def __init__(self, config: FakeConfig | None = None, *, keep_requests: int = 200) -> None:
        self.state = FakeState(config or FakeConfig(), keep_requests=keep_requests)
        self._ids = itertools.count(1)
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/completions"): self._completions,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("POST", "/v1/responses"): self._responses,
            ("GET", "/v1/models"): self._models,
            ("POST", "/v1/load_lora_adapter"): self._load_lora,
            ("GET", "/_fake/loras"): self._loras,
            ("GET", "/_fake/config"): self._get_config,
            ("POST", "/_fake/config"): self._set_config,
            ("GET", "/_fake/stats"): self._stats,
            ("GET", "/_fake/requests"): self._requests,
            ("POST", "/_fake/reset"): self._reset,
            ("GET", "/_fake/health"): self._health,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        ex = Exchange(scope, receive, send)
        handler = self._routes.get((scope["method"], ex.path))
        if handler is None:
            await ex.error(404, f"fake upstream has no route {scope['method']} {ex.path}")
            return
        if ex.path.startswith("/_fake/"):
            # Control calls are not traffic: neither counted nor in flight.
            await handler(ex)
            return
        self.state.counts[ex.path] += 1
        self.state.in_flight += 1
        try:
            await handler(ex)
        finally:
            self.state.in_flight -= 1
            if ex.entry is not None:
                ex.entry["finished_at"] = time.time()

    # -- inference ---------------------------------------------------------------------------

    async def _inference_body(self, ex: Exchange) -> tuple[dict[str, Any], Action] | None:
        """Read and check the body, then decide this request's fate; None when already answered."""
        raw = await ex.body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        headers = {h: v for h in RECORDED_HEADERS if (v := ex.header(h)) is not None}
        ex.entry = self.state.record(ex.path, body, headers)
        config = self.state.config
        if config.api_key is not None and ex.header("authorization") != f"Bearer {config.api_key}":
            self.state.outcomes["unauthorized"] += 1
            await ex.error(401, "fake upstream: missing or wrong API key")
            return None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            self.state.outcomes["bad_request"] += 1
            await ex.error(400, "fake upstream: the body must be a JSON object with a 'model'")
            return None
        action = self.state.next_action() if ex.path in INFERENCE_PATHS else Action()
        self.state.outcomes[action.do if action.do != "error" else f"error:{action.status}"] += 1
        latency_ms = config.model_latency_ms.get(body["model"], config.latency_ms)
        if latency_ms and not await self._pause(ex, latency_ms / 1000.0):
            return None
        if action.do == "error":
            retry_after = action.retry_after if action.retry_after is not None else config.retry_after
            headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
            await ex.error(action.status, f"fake upstream forced status {action.status}", headers, action.error)
            return None
        streamed = bool(body.get("stream"))
        if action.do == "reset" or (action.do == "drop_mid_stream" and not streamed):
            await ex.drop()
            return None
        if action.do == "error_mid_stream" and not streamed:
            await ex.error(500, "fake upstream failed while answering")
            return None
        if action.do == "hang" or (action.do == "hang_before_first_token" and not streamed):
            await ex.wait_disconnect()
            self.state.disconnects += 1
            return None
        return body, action

    async def _pause(self, ex: Exchange, seconds: float) -> bool:
        """Wait ``seconds`` before answering; False (and counted in ``disconnects``) if the client leaves first."""
        gone = asyncio.ensure_future(ex.wait_disconnect())
        try:
            await asyncio.wait_for(asyncio.shield(gone), seconds)
        except TimeoutError:
            return True
        finally:
            gone.cancel()
        self.state.disconnects += 1
        return False

    def _id(self, prefix: str) -> str:
        return f"{prefix}-fake-{next(self._ids)}"

    async def _chat(self, ex: Exchange) -> None:
        decided = await self._inference_body(ex)
        if decided is None:
            return
        body, action = decided
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            await ex.error(400, "fake upstream: 'messages' must be a non-empty list")
            return
        problem = continuation_problem(body)
        if problem is not None:
            await ex.error(400, f"fake upstream: {problem}")
            return
        config = self.state.config
        reply = chat_reply(
            body, config.answers.get(last_user_text(body), config.reply) if config.answers else config.reply
        )
        n: int = body["n"] if isinstance(body.get("n"), int) and body["n"] > 0 else 1
        cid, created, model = self._id("chatcmpl"), int(time.time()), body["model"]
        if not body.get("stream"):
            choices = [
                {"index": i, "message": reply.message(), "logprobs": None, "finish_reason": reply.finish_reason}
                for i in range(n)
            ]
            await ex.json(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": choices,
                    "usage": reply.usage(),
                    "service_tier": "default",
                    "system_fingerprint": None,
                    **self.state.config.response_extra,
                },
            )
            return
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        await self._stream(ex, action, self._chat_events(base, reply, include_usage))

    def _chat_events(self, base: dict[str, Any], reply: Reply, include_usage: bool) -> list[tuple[bool, Any]]:
        """The chunks of a streamed chat reply; the flag marks the chunks that carry a token."""

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        events: list[tuple[bool, Any]] = [(False, chunk({"role": "assistant", "content": ""}))]
        for i, call in enumerate(reply.tool_calls):
            events.append((True, chunk({"tool_calls": [{"index": i, **call}]})))
        events += [(True, chunk({"content": piece})) for piece in pieces(reply.text or "")]
        events.append((False, chunk({}, reply.finish_reason)))
        if include_usage:
            events.append((False, {**base, "choices": [], "usage": reply.usage()}))
        return events

    async def _stream(self, ex: Exchange, action: Action, events: Sequence[tuple[bool, Any]]) -> None:
        await ex.start(200, {"content-type": "text/event-stream", "cache-control": "no-cache"})
        if action.do == "hang_before_first_token":
            await ex.wait_disconnect()
            self.state.disconnects += 1
            return
        tps = self.state.config.tokens_per_s
        fails_after = action.after_chunks if action.do in MID_STREAM else None
        sent_tokens = 0
        for is_token, payload in events:
            if is_token:
                if tps and sent_tokens:
                    # Paced: the next token (or the failure that takes its place) comes a beat later.
                    await asyncio.sleep(1.0 / tps)
                if sent_tokens == fails_after:
                    await self._fail_mid_stream(ex, action)
                    return
                sent_tokens += 1
            await ex.send({"type": "http.response.body", "body": _sse(payload), "more_body": True})
        if fails_after is not None:
            # The reply had no more than ``after_chunks`` tokens: fail just before the end.
            await self._fail_mid_stream(ex, action)
            return
        await ex.send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    @staticmethod
    async def _fail_mid_stream(ex: Exchange, action: Action) -> None:
        if action.do == "drop_mid_stream":
            # Closed rather than reset, so that the client gets exactly the tokens sent before the drop.
            await ex.drop(reset=False)
            return
        error = {"error": {"message": "fake upstream failed mid-stream", "type": "server_error", "code": None}}
        await ex.send({"type": "http.response.body", "body": _sse(error), "more_body": True})
        await ex.send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _responses(self, ex: Exchange) -> None:
        """A small, whole (not streamed) ``/v1/responses``: the chat reply to ``input``, as a response object."""
        decided = await self._inference_body(ex)
        if decided is None:
            return
        body, _ = decided
        if body.get("stream"):
            await ex.error(400, "fake upstream: /v1/responses answers whole responses only")
            return
        items = body.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        if not isinstance(items, list) or not items:
            await ex.error(400, "fake upstream: 'input' must be a string or a non-empty list")
            return
        messages = [
            {"role": item.get("role"), "content": responses_text(item.get("content"))}
            for item in items
            if isinstance(item, dict) and item.get("role") in ("user", "system", "developer", "assistant")
        ]
        reply = chat_reply({**body, "messages": messages, "tools": None}, self.state.config.reply)
        usage = reply.usage()
        text = reply.text or ""
        content = [{"type": "output_text", "text": text, "annotations": []}]
        await ex.json(
            200,
            {
                "id": self._id("resp"),
                "object": "response",
                "created_at": int(time.time()),
                "status": "completed",
                "model": body["model"],
                "output": [
                    {
                        "type": "message",
                        "id": self._id("msg"),
                        "status": "completed",
                        "role": "assistant",
                        "content": content,
                    }
                ],
                "usage": {
                    "input_tokens": usage["prompt_tokens"],
                    "output_tokens": usage["completion_tokens"],
                    "total_tokens": usage["total_tokens"],
                },
            },
        )

    async def _completions(self, ex: Exchange) -> None:
        decided = await self._inference_body(ex)
        if decided is None:
            return
        body, action = decided
        if "prompt" not in body:
            await ex.error(400, "fake upstream: 'prompt' is required")
            return
        replies = completion_replies(body, self.state.config.reply)
        usage = {
            "prompt_tokens": sum(r.prompt_tokens for r in replies),
            "completion_tokens": sum(r.completion_tokens for r in replies),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        cid, created, model = self._id("cmpl"), int(time.time()), body["model"]
        base = {"id": cid, "object": "text_completion", "created": created, "model": model}
        if not body.get("stream"):
            choices = [
                {"index": i, "text": r.text, "finish_reason": r.finish_reason, "logprobs": None}
                for i, r in enumerate(replies)
            ]
            await ex.json(200, {**base, "choices": choices, "usage": usage})
            return
        events: list[tuple[bool, Any]] = []
        for i, r in enumerate(replies):
            for piece in pieces(r.text or ""):
                events.append((True, {**base, "choices": [{"index": i, "text": piece, "finish_reason": None}]}))
            events.append((False, {**base, "choices": [{"index": i, "text": "", "finish_reason": r.finish_reason}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append((False, {**base, "choices": [], "usage": usage}))
        await self._stream(ex, action, events)

    async def _embeddings(self, ex: Exchange) -> None:
        decided = await self._inference_body(ex)
        if decided is None:
            return
        body, _ = decided
        texts = embedding_inputs(body)
        if not texts:
            await ex.error(400, "fake upstream: 'input' must be a string or a non-empty list")
            return
        dims = body.get("dimensions")
        dim = dims if isinstance(dims, int) and dims > 0 else self.state.config.embedding_dim
        fmt = body.get("encoding_format")
        data = [
            {"object": "embedding", "index": i, "embedding": encode_vector(embedding_vector(t, dim), fmt)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(len(t.split()) for t in texts)
        await ex.json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    async def _models(self, ex: Exchange) -> None:
        cards = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake-upstream"} for m in self.state.config.models
        ]
        await ex.json(200, {"object": "list", "data": cards})

    async def _load_lora(self, ex: Exchange) -> None:
        raw = await ex.body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        ex.entry = self.state.record(ex.path, body, {h: v for h in RECORDED_HEADERS if (v := ex.header(h)) is not None})
        if not self.state.config.lora_loading:
            await ex.json(404, {"detail": "Not Found"})
            return
        name = body.get("lora_name") if isinstance(body, dict) else None
        path = body.get("lora_path") if isinstance(body, dict) else None
        if not isinstance(name, str) or not isinstance(path, str) or not name or not path:
            await ex.error(400, "fake upstream: both 'lora_name' and 'lora_path' must be provided")
            return
        if name in self.state.loras:
            await ex.error(400, f"The lora adapter '{name}' has already been loaded.")
            return
        self.state.loras[name] = path
        await ex.start(200, {"content-type": "text/plain"})
        await ex.send(
            {"type": "http.response.body", "body": f"Success: LoRA adapter '{name}' added successfully.".encode()}
        )

    async def _loras(self, ex: Exchange) -> None:
        await ex.json(200, dict(self.state.loras))

    # -- control -----------------------------------------------------------------------------

    async def _get_config(self, ex: Exchange) -> None:
        await ex.json(200, self.state.config.model_dump())

    async def _set_config(self, ex: Exchange) -> None:
        try:
            changes = orjson.loads(await ex.body() or b"{}")
        except orjson.JSONDecodeError:
            await ex.error(400, "POST /_fake/config takes a JSON object of FakeConfig fields")
            return
        if not isinstance(changes, dict):
            await ex.error(400, "POST /_fake/config takes a JSON object of FakeConfig fields")
            return
        try:
            config = self.state.update(changes)
        except ValidationError as exc:
            await ex.error(400, f"invalid fake upstream config: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
            return
        await ex.json(200, config.model_dump())

    async def _stats(self, ex: Exchange) -> None:
        await ex.json(200, self.state.stats())

    async def _requests(self, ex: Exchange) -> None:
        await ex.json(200, list(self.state.requests))

    async def _reset(self, ex: Exchange) -> None:
        self.state.reset()
        await ex.json(200, self.state.config.model_dump())

    async def _health(self, ex: Exchange) -> None:
        await ex.json(200, {"status": "ok", "fake": True})


# -- runner ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m lmdeck.testing.fake_upstream",
        description="A FAKE OpenAI-compatible upstream for tests, benchmarks and demos (deterministic echoes).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed at start)")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--tokens-per-s", type=float, default=None)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--error-status", type=int, default=500)
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that misbehave at random")
    p.add_argument("--faults", default="", help="what a random fault does, e.g. 500,reset,hang,drop_mid_stream:3")
    p.add_argument("--retry-after", type=float, default=None)
    p.add_argument("--script", default="", help="comma-separated outcomes, e.g. 500,429:1,200,reset,hang")
    p.add_argument(
        "--mode", default="normal", help="reset, hang, hang_before_first_token, drop_mid_stream or error_mid_stream"
    )
    p.add_argument("--reply", default=None, help="fixed reply text instead of the echo")
    p.add_argument("--model", action="append", default=None, help="a model id for /v1/models (repeatable)")
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--api-key", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-requests", type=int, default=200, help="requests /_fake/requests keeps (the last ones)")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> FakeConfig:
    data: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "tokens_per_s": args.tokens_per_s,
        "error_rate": args.error_rate,
        "error_status": args.error_status,
        "fault_rate": args.fault_rate,
        "retry_after": args.retry_after,
        "script": [s.strip() for s in args.script.split(",") if s.strip()],
        "mode": args.mode,
        "reply": args.reply,
        "embedding_dim": args.embedding_dim,
        "api_key": args.api_key,
        "seed": args.seed,
    }
    if args.model:
        data["models"] = args.model
    if args.faults.strip():
        data["faults"] = [s.strip() for s in args.faults.split(",") if s.strip()]
    return FakeConfig.model_validate(data)


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    args = parse_args(argv)
    try:
        config = config_from_args(args)
    except ValidationError as exc:
        print(f"invalid option: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    # Bind here rather than in uvicorn so that port 0 works and the real port can be announced.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    port = sock.getsockname()[1]
    print(f"fake upstream listening on http://{args.host}:{port}/v1", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(
            FakeUpstream(config, keep_requests=args.keep_requests),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
    )
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
