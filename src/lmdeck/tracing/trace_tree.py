"""One trace as a tree: the spans an application sent over OTLP and lmdeck's own LLM calls, together.

    tree = read_tree(db, "4bf92f3577b34da6a3ce929d0e0e4736", team_id="team-a", all_teams=False)
    tree.roots                 # span ids without a parent in the trace (the application's root span)
    tree.spans[0]              # depth first: {"span_id", "parent_span_id", "depth", "children", "source", ...}

An application that sends its spans to ``POST /v1/traces`` and calls lmdeck with a W3C
``traceparent`` gets lmdeck's call into its own trace: the call's trace record keeps the
caller's trace id (``client_trace_id``) and span (``parent_span_id``), and its span id is the one
lmdeck answered with in its ``traceparent``. Such a call appears under the span that made it,
with the OpenTelemetry GenAI attributes (``gen_ai.*``) lmdeck's exporter gives it. A trace
id of lmdeck's own (a call made without a ``traceparent``) is a tree of that one call.

The spans come back flat, depth first, each naming its parent, children and depth, so a
tree of any depth serialises (no nesting limit); a span whose parent is not in the trace
is a root, and so is one caught in a cycle of parents. Only the caller's team's spans and
calls are read: another team's spans never join a tree, whatever trace id they carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select

from lmdeck.db import Database
from lmdeck.protocol.traces import TraceRecord
from lmdeck.tracing.otel import OPERATIONS, genai_attributes
from lmdeck.tracing.schema import from_row, traces
from lmdeck.tracing.spans import MAX_TREE_SPANS, SpanRow, spans_of_trace


@dataclass(frozen=True)
class TraceTree:
    """The spans of one trace, depth first (see the module docs); ``truncated`` when a source held more
    than :data:`~lmdeck.tracing.spans.MAX_TREE_SPANS`."""

    trace_id: str
    roots: list[str]
    spans: list[dict[str, Any]]
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "trace_tree",
            "trace_id": self.trace_id,
            "roots": self.roots,
            "spans": self.spans,
            "truncated": self.truncated,
        }


def span_node(span: SpanRow) -> dict[str, Any]:
    """A span sent over OTLP as a tree node (``source: "otlp"``)."""
    return {
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "trace_id": span.trace_id,
        "name": span.name,
        "kind": span.kind,
        "source": "otlp",
        "service_name": span.service_name,
        "scope_name": span.scope_name,
        "start_time_unix_nano": span.start_ns,
        "end_time_unix_nano": span.end_ns,
        "duration_ms": (span.end_ns - span.start_ns) / 1e6,
        "status": span.status,
        "status_message": span.status_message,
        "attributes": span.attributes,
        "events": span.events,
        "links": span.links,
    }


def call_node(record: TraceRecord, trace_id: str) -> dict[str, Any]:
    """One of lmdeck's LLM calls as a tree node (``source: "lmdeck"``), with its GenAI attributes."""
    start_ns = int(record.created_at * 1e9)
    own = record.trace_id == trace_id
    return {
        "span_id": record.span_id,
        # A call in lmdeck's own trace is its root; in the caller's it hangs under the caller's span.
        "parent_span_id": None if own else record.parent_span_id,
        "trace_id": trace_id,
        "name": f"{OPERATIONS.get(record.kind, record.kind)} {record.route or ''}".strip(),
        "kind": "client",
        "source": "lmdeck",
        "service_name": "lmdeck",
        "scope_name": "lmdeck",
        "start_time_unix_nano": start_ns,
        "end_time_unix_nano": start_ns + int(record.latency_ms * 1e6),
        "duration_ms": record.latency_ms,
        "status": "error" if record.status_code >= 400 else "unset",
        "status_message": record.error,
        "attributes": genai_attributes(record),
        "events": [],
        "links": [],
        "trace_record_id": record.id,
        "session_id": record.session_id,
    }


def build_tree(trace_id: str, nodes: list[dict[str, Any]], *, truncated: bool = False) -> TraceTree:
    """Link ``nodes`` (each with ``span_id``, ``parent_span_id``, ``start_time_unix_nano``) into a tree:
    depth first, children in start order; each node gains ``depth`` and ``children`` (span ids)."""
    ordered = sorted(nodes, key=lambda n: (n["start_time_unix_nano"], n["span_id"]))
    by_id: dict[str, dict[str, Any]] = {}
    for node in ordered:
        by_id.setdefault(node["span_id"], node)
        node["children"] = []
    for node in ordered:
        parent = by_id.get(node["parent_span_id"] or "")
        if parent is not None and parent is not node:
            parent["children"].append(node["span_id"])
    out: list[dict[str, Any]] = []
    placed: set[int] = set()

    def walk(root: dict[str, Any]) -> None:
        stack = [(root, 0)]
        while stack:
            node, depth = stack.pop()
            if id(node) in placed:
                continue
            placed.add(id(node))
            node["depth"] = depth
            out.append(node)
            kids = [by_id[k] for k in node["children"]]
            stack.extend((kid, depth + 1) for kid in reversed(kids))

    roots = [n for n in ordered if (n["parent_span_id"] or "") not in by_id or by_id[n["parent_span_id"]] is n]
    for node in roots:
        walk(node)
    for node in ordered:  # parents in a cycle: none of them is reached from a root
        if id(node) not in placed:
            roots.append(node)
            walk(node)
    return TraceTree(trace_id, [n["span_id"] for n in roots], out, truncated)


def read_tree(db: Database, trace_id: str, team_id: str | None = None, all_teams: bool = True) -> TraceTree | None:
    """The tree of ``trace_id`` within the scope (see :func:`~lmdeck.tracing.spans.spans_of_trace`); None when
    the scope holds no span and no call of it."""
    spans = spans_of_trace(db, trace_id, team_id=team_id, all_teams=all_teams, limit=MAX_TREE_SPANS + 1)
    c = traces.c
    stmt = select(traces).where(or_(c.client_trace_id == trace_id, c.trace_id == trace_id))
    if not all_teams:
        stmt = stmt.where(c.team_id == team_id if team_id is not None else c.team_id.is_(None))
    with db.engine.connect() as conn:
        rows = conn.execute(stmt.order_by(c.created_at, c.id).limit(MAX_TREE_SPANS + 1)).all()
    if not spans and not rows:
        return None
    truncated = len(spans) > MAX_TREE_SPANS or len(rows) > MAX_TREE_SPANS
    nodes = [span_node(span) for span in spans[:MAX_TREE_SPANS]]
    nodes += [call_node(from_row(row), trace_id) for row in rows[:MAX_TREE_SPANS]]
    return build_tree(trace_id, nodes, truncated=truncated)
