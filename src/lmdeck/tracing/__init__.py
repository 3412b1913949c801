"""Tracing: one record per request, spooled durably, stored in the background."""

from lmdeck.protocol.traces import TraceRecord, new_trace_id

__all__ = ["TraceRecord", "new_trace_id"]
