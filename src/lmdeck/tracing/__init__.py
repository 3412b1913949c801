"""Tracing: one record per request, spooled durably, stored in the background.

The record itself, :class:`lmdeck.protocol.traces.TraceRecord`, is a wire schema (the SDK reads it too).
"""
