"""The ids of one HTTP request: lmdeck's own and the caller's, stamped at the edge and read inward.

    ids = RequestIds.of(scope)            # set by lmdeck.app.middleware.request_id, else None
    ids.request_id                        # "req_" + 24 hex digits
    ids.client_trace_id                   # the caller's traceparent trace id, or None

The request-id middleware keeps one :class:`RequestIds` in the ASGI scope's ``state``; the
serving layer builds the trace from it and the internal-error middleware names the request id.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

#: The key of the :class:`RequestIds` in ``scope["state"]``; read and written only by :class:`RequestIds`.
_STATE_KEY = "lmdeck.request_ids"


@dataclass(frozen=True)
class RequestIds:
    """lmdeck's ids for a request (``request_id``, W3C ``trace_id`` and ``span_id``) and the caller's.

    ``client_request_id`` is a valid ``x-request-id`` the caller sent; ``client_trace_id`` and
    ``parent_span_id`` come from a valid ``traceparent``. They are recorded, never used as identities.
    """

    request_id: str
    trace_id: str
    span_id: str
    client_request_id: str | None = None
    client_trace_id: str | None = None
    parent_span_id: str | None = None
    #: The caller's ``traceparent`` sampled flag (True without a ``traceparent``): False, nothing is exported.
    sampled: bool = True
    #: The caller's ``tracestate``, passed on unchanged to upstreams.
    tracestate: str | None = None

    def stamp(self, scope: MutableMapping[str, Any]) -> None:
        """Keep these ids in ``scope["state"]`` for the layers inside."""
        scope.setdefault("state", {})[_STATE_KEY] = self

    @staticmethod
    def of(scope: MutableMapping[str, Any]) -> RequestIds | None:
        """The ids stamped on ``scope``, or None when no request-id middleware ran."""
        ids = scope.get("state", {}).get(_STATE_KEY)
        return ids if isinstance(ids, RequestIds) else None
