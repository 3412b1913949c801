"""``client.feedback``: report how good an answer was.

reply = openai_client.chat.completions.with_raw_response.create(model="demo", messages=[...])
client.feedback.send(reply.headers["x-request-id"], value=1, name="thumbs", source="user")
client.feedback.summary(by="prompt")     # count and mean per prompt version
"""

from __future__ import annotations

from typing import Any, Literal

from lmdeck.sdk.namespace import Namespace

Rows = list[dict[str, Any]]


class Feedback(Namespace):
    """The feedback API (``/api/feedback``)."""

    name = "feedback"

    def send(
        self,
        trace_id: str,
        *,
        value: float | bool | None = None,
        name: str = "user_feedback",
        label: str | None = None,
        comment: str | None = None,
        correction: Any = None,
        source: Literal["user", "api", "judge"] = "api",
    ) -> dict[str, Any]:
        """Attach feedback to a trace (its id, its ``x-request-id`` or its W3C trace id); ``correction``
        is the answer the model should have given (a dataset cut from traces can take it as expected)."""
        body = {
            "trace_id": trace_id,
            "name": name,
            "value": value,
            "label": label,
            "comment": comment,
            "correction": correction,
            "source": source,
        }
        stored: dict[str, Any] = self.client.post(
            "/api/feedback", json={k: v for k, v in body.items() if v is not None}
        )
        return stored

    def list(self, *, trace_id: str | None = None, limit: int = 100) -> Rows:
        data: Rows = self.client.get("/api/feedback", params={"trace_id": trace_id, "limit": limit})["data"]
        return data

    def summary(self, *, by: Literal["prompt", "model", "route", "version"] = "version") -> Rows:
        data: Rows = self.client.get("/api/feedback/summary", params={"by": by})["data"]
        return data


NAMESPACE = Feedback
