"""One batch row through the gateway's pipeline, into a line of the output or error file.

    rows = BatchRows(pipeline, principal_of=keys.principal, admit=ratelimit.wait_admitted, route_kind=kind_of)
    ready = await rows.admit(job, custom_id="row-1", url="/v1/chat/completions", body={...}, deadline=expires_at)
    line = ready if isinstance(ready, RowResult) else await rows.answer(job, "row-1", ready)
    line.ok, line.text      # 2xx or not; the JSON line in OpenAI's batch output shape

A row is a request of the batch's key: authenticated (a key revoked since the batch was made fails its
rows), rate limited, budgeted, guardrailed and traced like a request to the same endpoint, with
``metadata.batch_id`` and ``metadata.custom_id`` on its trace. Before the pipeline runs, ``admit`` waits
until the key's rate limits have room (never past ``deadline``, the end of the completion window), so
the limit slows a batch down instead of failing its rows, and a row is traced once however long it
waited. A row the pipeline refuses for any other reason, or whose upstream fails, becomes an error line
with the status and the error body a client would have got.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from lmdeck.gateway.batches.store import BatchJob
from lmdeck.gateway.errors import upstream_to_api_error
from lmdeck.gateway.serving import SCHEMAS, parse_body, run_after_response
from lmdeck.pipeline.chain import Pipeline
from lmdeck.pipeline.context import Completed, Kind, RequestContext
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.protocol.traces import TraceRecord
from lmdeck.protocol.wire import wire_dict
from lmdeck.providers.base import UpstreamError

log = logging.getLogger(__name__)

#: The pipeline kind of each endpoint a batch may name.
KINDS: dict[str, Kind] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}
#: The route kind (``RouteConfig.kind``) that serves each pipeline kind.
ROUTE_KINDS: dict[Kind, str] = {"chat": "chat", "completions": "chat", "embeddings": "embeddings"}

#: Waits until the request's rate limits admit it, taking its share; raises the 429 past the deadline.
Admit = Callable[[RequestContext, float], Awaitable[None]]
#: The principal of an active key by id; None when it is revoked, expired or gone.
PrincipalOf = Callable[[str], Principal | None]
#: The kind of the route a model names (``chat`` or ``embeddings``); None when no such route is served.
RouteKind = Callable[[str], str | None]


@dataclass(frozen=True)
class RowResult:
    """A finished row: ``ok`` for a 2xx answer; ``text`` is its JSON line (no newline)."""

    ok: bool
    text: bytes


def output_line(custom_id: str, status: int, request_id: str, body: dict[str, Any]) -> RowResult:
    line = {
        "id": f"batch_req_{secrets.token_hex(12)}",
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": request_id, "body": body},
        "error": None,
    }
    return RowResult(200 <= status < 300, orjson.dumps(line))


def expired_line(custom_id: str) -> RowResult:
    """The error line of a row the completion window ended before it ran."""
    line = {
        "id": f"batch_req_{secrets.token_hex(12)}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": "batch_expired", "message": "the batch's completion window ended before this request ran"},
    }
    return RowResult(False, orjson.dumps(line))


class BatchRows:
    """Runs batch rows through ``pipeline`` (see the module docs)."""

    def __init__(self, pipeline: Pipeline, *, principal_of: PrincipalOf, admit: Admit, route_kind: RouteKind) -> None:
        self.pipeline = pipeline
        self.principal_of = principal_of
        self.admit_fn = admit
        self.route_kind = route_kind

    def context(self, job: BatchJob, custom_id: str, kind: Kind, body: Any, principal: Principal) -> RequestContext:
        request_id = f"batch_req_{secrets.token_hex(12)}"
        trace = TraceRecord(request_id=request_id, kind=kind, user=getattr(body, "user", None))
        trace.metadata["batch_id"] = job.batch.id
        trace.metadata["custom_id"] = custom_id
        return RequestContext(
            kind=kind, body=body, request_id=request_id, trace=trace, route_name=body.model, principal=principal
        )

    async def admit(
        self, job: BatchJob, *, custom_id: str, url: str, body: dict[str, Any], deadline: float
    ) -> RequestContext | RowResult:
        """Check one row and wait until its rate limits admit it: its request context, ready for
        :meth:`answer`, or its error line. Cancelling it while it waits leaves no trace and no call."""
        try:
            kind = KINDS[url]
            parsed = parse_body(orjson.dumps(body), SCHEMAS[kind])
            if getattr(parsed, "stream", False):
                raise APIError(400, "stream: a batch row cannot stream; remove `stream`", param="stream")
            self.check_endpoint(parsed.model, url, kind)
            principal = self.principal_of(job.key_id)
            if principal is None:
                raise APIError(401, "the batch's API key is revoked, expired or gone", code="invalid_api_key")
            ctx = self.context(job, custom_id, kind, parsed, principal)
            await self.admit_fn(ctx, deadline)
            # The request starts once admitted: its trace's time is its admission, its latency excludes the wait.
            ctx.trace.created_at = time.time()
            ctx.started = time.perf_counter()
            return ctx
        except APIError as exc:
            return output_line(custom_id, exc.status, "", exc.body())

    async def answer(self, job: BatchJob, custom_id: str, ctx: RequestContext) -> RowResult:
        """Run an admitted row through the pipeline; its output or error line. Raises nothing but
        ``CancelledError``."""
        try:
            try:
                result = await self.pipeline.run(ctx)
            except UpstreamError as exc:
                raise upstream_to_api_error(exc) from None
            if not isinstance(result, Completed):
                raise APIError(400, "stream: a batch row cannot stream", param="stream")
            await run_after_response(ctx)
            return output_line(custom_id, 200, ctx.request_id, wire_dict(result.response))
        except APIError as exc:
            return output_line(custom_id, exc.status, ctx.request_id, exc.body())
        except Exception:
            log.exception("batch %s: row %r failed", job.batch.id, custom_id)
            failure = APIError(500, "the row failed: internal error", code="internal_error")
            return output_line(custom_id, 500, ctx.request_id, failure.body())

    def check_endpoint(self, model: str, url: str, kind: Kind) -> None:
        """A 400 naming the route and the endpoint when the route's targets cannot serve ``url``."""
        served = self.route_kind(model)
        if served is not None and served != ROUTE_KINDS[kind]:
            raise APIError(
                400,
                f"the route {model!r} serves {served} and cannot answer {url}: name a route of kind "
                f"{ROUTE_KINDS[kind]!r} in this row's body.model (GET /v1/models lists them)",
                param="body.model",
                code="unsupported_endpoint",
            )
