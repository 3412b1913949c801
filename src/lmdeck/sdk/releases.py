"""``client.releases``: progressive delivery of a candidate bundle on a route.

client.releases.create({"name": "reply-v3", "route": "support", "prompt": "support-reply",
                        "candidate": {"prompt_version": 3},
                        "strategy": {"steps": [5, 25, 50, 100], "interval_s": 300, "min_samples": 50}})
client.releases.start("reply-v3")
client.releases.get("reply-v3")["state"]        # "canary", then "promoted" | "rolled_back" | "aborted"
client.releases.rollback("reply-v3", reason="answers got worse")
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from lmdeck.sdk.namespace import Namespace

Rows = list[dict[str, Any]]


class Releases(Namespace):
    """The releases API (``/api/releases``)."""

    name = "releases"

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.client.post("/api/releases", json=spec)
        return created

    def list(self, state: str | None = None) -> Rows:
        data: Rows = self.client.get("/api/releases", params={"state": state} if state else None)["data"]
        return data

    def get(self, name: str) -> dict[str, Any]:
        """The release: state, step, share, last analysis and history."""
        found: dict[str, Any] = self.client.get(f"/api/releases/{quote(name, safe='')}")
        return found

    def shadow(self, name: str, *, pairs: int = 20) -> dict[str, Any]:
        """The release's shadow stage: counters, budget left, verdict and the newest ``pairs`` judged pairs."""
        found: dict[str, Any] = self.client.get(f"/api/releases/{quote(name, safe='')}/shadow", params={"pairs": pairs})
        return found

    def act(self, name: str, action: str, *, reason: str | None = None) -> dict[str, Any]:
        """``start``, ``promote`` (to the next step), ``rollback`` or ``abort`` the release."""
        body = {"reason": reason} if reason is not None else {}
        done: dict[str, Any] = self.client.post(f"/api/releases/{quote(name, safe='')}/{action}", json=body)
        return done

    def start(self, name: str) -> dict[str, Any]:
        return self.act(name, "start")

    def promote(self, name: str, *, reason: str | None = None) -> dict[str, Any]:
        return self.act(name, "promote", reason=reason)

    def rollback(self, name: str, *, reason: str | None = None) -> dict[str, Any]:
        return self.act(name, "rollback", reason=reason)

    def abort(self, name: str, *, reason: str | None = None) -> dict[str, Any]:
        return self.act(name, "abort", reason=reason)

    def analyze(self, now: float | None = None) -> Rows:
        """Run the release controller's analysis now (admins); ``now`` analyses as of that time."""
        data: Rows = self.client.post("/api/releases/analyze", json={"now": now} if now is not None else {})["data"]
        return data


NAMESPACE = Releases
