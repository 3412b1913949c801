"""``client.experiments``: A/B experiments on a route or prompt.

client.experiments.create({"name": "reply-v3", "prompt": "support-reply", "metric": "feedback:thumbs",
                           "variants": [{"name": "v2", "weight": 50, "prompt_version": 2},
                                        {"name": "v3", "weight": 50, "prompt_version": 3}]})
shown = client.experiments.get("reply-v3")
shown["verdict"]                 # {"status": "winner", "winner": "v3", "evidence": [...]}
client.experiments.promote("reply-v3")   # moves support-reply@production to v3, audited
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from lmdeck.sdk.namespace import Namespace

Rows = list[dict[str, Any]]


class Experiments(Namespace):
    """The experiments API (``/api/experiments``)."""

    name = "experiments"

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.client.post("/api/experiments", json=spec)
        return created

    def list(self) -> Rows:
        data: Rows = self.client.get("/api/experiments")["data"]
        return data

    def get(self, name: str) -> dict[str, Any]:
        """The experiment with per-variant statistics and its verdict."""
        found: dict[str, Any] = self.client.get(f"/api/experiments/{quote(name, safe='')}")
        return found

    def stop(self, name: str) -> dict[str, Any]:
        stopped: dict[str, Any] = self.client.post(f"/api/experiments/{quote(name, safe='')}/stop")
        return stopped

    def promote(self, name: str, variant: str | None = None, *, reason: str | None = None) -> dict[str, Any]:
        """Move the experiment's label/alias to ``variant`` (default: the winner) and stop it."""
        body = {k: v for k, v in {"variant": variant, "reason": reason}.items() if v is not None}
        promoted: dict[str, Any] = self.client.post(f"/api/experiments/{quote(name, safe='')}/promote", json=body)
        return promoted


NAMESPACE = Experiments
