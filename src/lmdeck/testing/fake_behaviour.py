"""How the fake upstream behaves: its configuration, its script of forced outcomes, its counters.

A test scripts the next requests' outcomes, in order, then lets the rest answer normally::

    config = FakeConfig(script=[500, "429:1", 200, "reset", "hang"])
    config.script[1]
    Action(do='error', status=429, retry_after=1.0)

Script entries are an HTTP status (``200`` answers, anything else fails), ``"STATUS:SECONDS"``
(a failure with a ``Retry-After`` header), the name of a misbehaviour (``"reset"``,
``"hang"``, ``"hang_before_first_token"``, ``"drop_mid_stream"``, ``"error_mid_stream"``),
``"NAME:K"`` for a mid-stream misbehaviour after ``K`` token chunks (``"drop_mid_stream:3"``)
or a full :class:`Action` mapping. Only inference paths (chat, completions, embeddings)
consume the script.

Unscripted requests fail at random when ``fault_rate`` is set: each misbehaves with that
probability, with a fault drawn evenly from ``faults`` (seeded by ``seed``, so a run repeats)::

    FakeConfig(fault_rate=0.3, faults=[500, 503, "reset", "hang", "drop_mid_stream:4"])
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Do = Literal["answer", "error", "reset", "hang", "hang_before_first_token", "drop_mid_stream", "error_mid_stream"]
Mode = Literal["normal", "reset", "hang", "hang_before_first_token", "drop_mid_stream", "error_mid_stream"]

#: Misbehaviours that can be named on their own in a script or as the ``mode``.
MISBEHAVIOURS: frozenset[str] = frozenset(
    {"reset", "hang", "hang_before_first_token", "drop_mid_stream", "error_mid_stream"}
)
#: Misbehaviours that happen part-way through a stream, after ``after_chunks`` token chunks.
MID_STREAM: frozenset[str] = frozenset({"drop_mid_stream", "error_mid_stream"})


class Action(BaseModel):
    """What the fake does with one request.

    - ``answer``: a normal, deterministic reply;
    - ``error``: an OpenAI-shaped error with ``status`` (and ``Retry-After`` when set);
    - ``reset``: the connection is dropped (TCP reset) before any response byte;
    - ``hang``: nothing is ever sent; the request waits until the client gives up;
    - ``hang_before_first_token``: a stream's headers are sent, then nothing;
    - ``drop_mid_stream``: a stream sends ``after_chunks`` token chunks, then the connection
      is closed with the response cut short (before ``[DONE]`` when the reply is shorter);
      everything sent before arrives;
    - ``error_mid_stream``: a stream sends ``after_chunks`` token chunks, then an in-stream
      ``{"error": ...}`` event and ``[DONE]``.

    A request that is not streamed gets a reset for ``drop_mid_stream`` and a 500 for
    ``error_mid_stream``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    do: Do = "answer"
    status: int = Field(default=200, ge=200, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    error: dict[str, Any] | None = Field(
        default=None, description="the OpenAI error object an `error` answers with (default: a generic one)"
    )
    after_chunks: int = Field(default=1, ge=0, description="token chunks sent before a mid-stream failure")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("a script entry is a status code, 'STATUS:SECONDS', a misbehaviour name or a mapping")
        if isinstance(value, int):
            return {"do": "answer" if value < 400 else "error", "status": value}
        if isinstance(value, str):
            text = value.strip()
            if text in MISBEHAVIOURS:
                return {"do": text}
            status, _, after = text.partition(":")
            if status in MID_STREAM and after.isdigit():
                return {"do": status, "after_chunks": int(after)}
            if not status.isdigit():
                raise ValueError(
                    f"unknown script entry {value!r}: use a status (500), 'STATUS:SECONDS' (429:1), "
                    f"one of {', '.join(sorted(MISBEHAVIOURS))} or 'NAME:K' (drop_mid_stream:3)"
                )
            code = int(status)
            out: dict[str, Any] = {"do": "answer" if code < 400 else "error", "status": code}
            if after:
                out["retry_after"] = float(after)
            return out
        if isinstance(value, dict) and "do" not in value and "status" in value:
            return {**value, "do": "answer" if int(value["status"]) < 400 else "error"}
        return value


ANSWER = Action()


class FakeConfig(BaseModel):
    """The fake upstream's behaviour; every field can be changed at run time.

    >>> FakeConfig(latency_ms=50, script=[500, 200]).script[0].status
    500
    """

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0, description="delay before answering (before the first token)")
    model_latency_ms: dict[str, float] = Field(
        default_factory=dict, description="delay before answering by the request's `model`, over `latency_ms`"
    )
    tokens_per_s: float | None = Field(default=None, gt=0, description="stream pacing; unset streams at once")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="share of unscripted requests that fail")
    error_status: int = Field(default=500, ge=400, le=599, description="status of the random failures")
    fault_rate: float = Field(default=0.0, ge=0, le=1, description="share of unscripted requests that misbehave")
    faults: list[Action] = Field(
        default_factory=lambda: [Action(do="error", status=500)],
        min_length=1,
        description="what a random fault does, drawn evenly (script entries)",
    )
    retry_after: float | None = Field(default=None, ge=0, description="Retry-After sent with every failure")
    script: list[Action] = Field(default_factory=list, description="outcomes of the next requests, in order")
    mode: Mode = Field(default="normal", description="a misbehaviour applied to every unscripted request")
    reply: str | None = Field(default=None, description="fixed reply text instead of the echo")
    answers: dict[str, str] = Field(
        default_factory=dict,
        description="chat replies by the last user message's text (a FAKE model that knows the answers), "
        "before `reply` and the echo",
    )
    models: list[str] = Field(default_factory=lambda: ["fake-model"], min_length=1)
    embedding_dim: int = Field(default=16, ge=1, le=4096)
    api_key: str | None = Field(default=None, description="when set, requests must carry this bearer key")
    response_extra: dict[str, Any] = Field(
        default_factory=dict, description="fields added to every whole chat answer (fields OpenAI may add later)"
    )
    seed: int = 0
    lora_loading: bool = Field(
        default=True, description="serve POST /v1/load_lora_adapter; False answers it 404 (vLLM without runtime LoRA)"
    )


#: Paths that consume the script and are subject to latency and failures.
INFERENCE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"})


class FakeState:
    """The live configuration, the remaining script and what has been seen so far."""

    def __init__(self, config: FakeConfig, keep_requests: int = 200) -> None:
        self.initial = config.model_copy(deep=True)
        self.config = config.model_copy(deep=True)
        self.script: deque[Action] = deque(self.config.script)
        self.rng = random.Random(self.config.seed)
        self.counts: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.requests: deque[dict[str, Any]] = deque(maxlen=keep_requests)
        self.in_flight = 0
        #: Requests whose client closed the connection while the fake was still on them (latency, hangs).
        self.disconnects = 0
        #: LoRA adapters loaded through ``/v1/load_lora_adapter``: name -> path, in load order.
        self.loras: dict[str, str] = {}

    def reset(self) -> None:
        """Back to the configuration the fake started with; counters and recorded requests cleared."""
        self.config = self.initial.model_copy(deep=True)
        self.script = deque(self.config.script)
        self.rng = random.Random(self.config.seed)
        self.counts.clear()
        self.outcomes.clear()
        self.requests.clear()
        self.disconnects = 0
        self.loras.clear()

    def update(self, changes: dict[str, Any]) -> FakeConfig:
        """Merge ``changes`` into the configuration; a new ``script`` replaces what is left of the old."""
        merged = {**self.config.model_dump(), **changes}
        config = FakeConfig.model_validate(merged)
        self.config = config
        if "script" in changes:
            self.script = deque(config.script)
        if "seed" in changes:
            self.rng = random.Random(config.seed)
        return config

    def next_action(self) -> Action:
        if self.script:
            return self.script.popleft()
        if self.config.fault_rate and self.rng.random() < self.config.fault_rate:
            return self.rng.choice(self.config.faults)
        if self.config.error_rate and self.rng.random() < self.config.error_rate:
            return Action(do="error", status=self.config.error_status)
        if self.config.mode != "normal":
            return Action(do=self.config.mode)
        return ANSWER

    def record(self, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
        """Keep the request; ``received_at`` is when its body was in (epoch seconds), ``finished_at``
        (set by the fake once it is done with the request) when its answer was sent or it failed."""
        entry: dict[str, Any] = {"path": path, "body": body, "headers": headers, "received_at": time.time()}
        self.requests.append(entry)
        return entry

    def stats(self) -> dict[str, Any]:
        return {
            "total": sum(self.counts.values()),
            "counts": dict(self.counts),
            "outcomes": dict(self.outcomes),
            "in_flight": self.in_flight,
            "disconnects": self.disconnects,
            "script_left": len(self.script),
        }
