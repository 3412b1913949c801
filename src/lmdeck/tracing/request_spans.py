"""What one HTTP request's spans are made of, gathered while it runs and exported when it ends.

The server-span middleware opens a :class:`RequestSpans` for every HTTP request and makes it current;
the dispatcher opens an :class:`UpstreamAttempt` for every call to a target, whose span id is the parent
that the transport passes upstream in ``traceparent``; the record step's exporter attaches the trace
record. When the response is complete, the exporter turns it all into one SERVER span and, under it, one
GenAI CLIENT span per upstream attempt::

    spans = RequestSpans(trace_id, span_id, sampled=True)
    token = CURRENT_REQUEST.set(spans)
    with spans.attempt(target="openai/gpt-4o", provider="openai", model="gpt-4o") as attempt:
        headers = attempt.propagation_headers()   # {"traceparent": "00-<trace>-<attempt span>-01"}
        attempt.received(status=500)              # what the transport saw
        attempt.fail(error_type="500")
    CURRENT_REQUEST.reset(token)

Everything here is plain data: nothing is exported or blocks.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lmdeck.protocol.traces import TraceRecord


def new_span_id() -> str:
    """A random, non-zero 16-hex-digit W3C span id."""
    while True:
        span_id = os.urandom(8).hex()
        if span_id != "0" * 16:
            return span_id


@dataclass
class UpstreamAttempt:
    """One call to one target: its span id, times (ns since the epoch), where it went and how it ended.

    ``status_code`` is the upstream's own HTTP status (None when no answer came: a refused connection,
    a timeout, an in-process model); ``error_type`` is set when the attempt failed.
    """

    trace_id: str
    span_id: str
    sampled: bool
    tracestate: str | None
    target: str
    provider: str
    model: str
    started_ns: int = field(default_factory=time.time_ns)
    ended_ns: int | None = None
    server_address: str | None = None
    server_port: int | None = None
    status_code: int | None = None
    error_type: str | None = None

    @property
    def traceparent(self) -> str:
        """The W3C ``traceparent`` that makes this attempt's span the upstream's parent."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def propagation_headers(self) -> dict[str, str]:
        """``traceparent`` (and the caller's ``tracestate``, kept as it came) for the upstream request."""
        headers = {"traceparent": self.traceparent}
        if self.tracestate:
            headers["tracestate"] = self.tracestate
        return headers

    def sent_to(self, url: str) -> None:
        """Record the upstream's address (``server.address``, ``server.port``) from the URL called."""
        parts = urlsplit(url)
        self.server_address = parts.hostname
        try:
            port = parts.port
        except ValueError:
            port = None
        self.server_port = port or {"http": 80, "https": 443}.get(parts.scheme)

    def received(self, status: int) -> None:
        """The upstream answered with HTTP ``status``."""
        self.status_code = status

    def fail(self, error_type: str) -> None:
        """The attempt failed; ``error_type`` is the upstream's status code as a string, or lmdeck's kind."""
        self.error_type = error_type
        self.end()

    def end(self) -> None:
        if self.ended_ns is None:
            self.ended_ns = time.time_ns()


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else getattr(item, key, None)


def _dimensions(vector: Any) -> int | None:
    if isinstance(vector, list):
        return len(vector)
    if isinstance(vector, str):  # encoding_format=base64: little-endian float32s
        try:
            return len(base64.b64decode(vector, validate=True)) // 4
        except ValueError:
            return None
    return None


@dataclass
class ResponseFacts:
    """What the answer said about itself: its ``id``, the ``model`` the upstream reported, finish reasons
    (one per choice, in index order), and for embeddings the vector length."""

    id: str | None = None
    model: str | None = None
    finish_reasons: dict[int, str] = field(default_factory=dict)
    dimensions: int | None = None

    def read(self, answer: Any) -> None:
        """Take what ``answer`` (a whole response or one stream chunk) carries; later chunks add to it."""
        if (answer_id := _get(answer, "id")) and isinstance(answer_id, str):
            self.id = answer_id
        if (model := _get(answer, "model")) and isinstance(model, str):
            self.model = model
        for position, choice in enumerate(_get(answer, "choices") or []):
            reason = _get(choice, "finish_reason")
            if reason:
                index = _get(choice, "index")
                self.finish_reasons[index if isinstance(index, int) else position] = str(reason)
        data = _get(answer, "data")
        if isinstance(data, list) and data and self.dimensions is None:
            self.dimensions = _dimensions(_get(data[0], "embedding"))


@dataclass
class RequestSpans:
    """The spans of one HTTP request: the SERVER span's ids and the attempts and trace record inside it.

    ``sampled`` is the decision to export (the caller's ``traceparent`` flag, or lmdeck's own);
    ``tracestate`` is the caller's, passed on unchanged.
    """

    trace_id: str
    span_id: str
    sampled: bool = True
    tracestate: str | None = None
    started_ns: int = field(default_factory=time.time_ns)
    attempts: list[UpstreamAttempt] = field(default_factory=list)
    record: TraceRecord | None = None
    #: The request body as the pipeline last saw it (a pydantic model), and what its answer said.
    request: Any = None
    response: ResponseFacts | None = None
    #: Set once the response is complete: a task that outlived the request (and inherited its context)
    #: must not add to spans already exported.
    closed: bool = False
    #: Whether the SERVER span was exported (set by the middleware when it hands the spans over).
    exported: bool = False

    @contextmanager
    def attempt(self, target: str, provider: str, model: str) -> Iterator[UpstreamAttempt]:
        """Open an attempt and make it current for the transport (see :data:`CURRENT_ATTEMPT`)."""
        attempt = UpstreamAttempt(self.trace_id, new_span_id(), self.sampled, self.tracestate, target, provider, model)
        self.attempts.append(attempt)
        token = CURRENT_ATTEMPT.set(attempt)
        try:
            yield attempt
        finally:
            CURRENT_ATTEMPT.reset(token)


def note_request(body: Any) -> None:
    """Keep the request body (any redaction aside: parameters are exported, content only on request)."""
    spans = current_request()
    if spans is not None:
        spans.request = body


def note_answer(answer: Any) -> None:
    """Read a response, or one chunk of a stream, into the current request's :class:`ResponseFacts`."""
    spans = current_request()
    if spans is not None:
        if spans.response is None:
            spans.response = ResponseFacts()
        spans.response.read(answer)


def current_request() -> RequestSpans | None:
    """The spans of the request being served, None outside one (or in a task that outlived it)."""
    spans = CURRENT_REQUEST.get()
    return spans if spans is not None and not spans.closed else None


#: The request being served (set by the server-span middleware; None outside an HTTP request).
CURRENT_REQUEST: ContextVar[RequestSpans | None] = ContextVar("lmdeck_request_spans", default=None)
#: The upstream attempt being made (set by the dispatcher around one call to a target).
CURRENT_ATTEMPT: ContextVar[UpstreamAttempt | None] = ContextVar("lmdeck_upstream_attempt", default=None)
