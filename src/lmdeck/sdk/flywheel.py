"""``client.flywheel``: production traces → dataset → fine-tuning job → release, as one run.

plan = client.flywheel.run(route="demo", from_traces="feedback<=0 skill=count since=7d",
                           corrections="annotations", base="demo", register_as="counter", dry_run=True)
run = client.flywheel.run(route="demo", from_traces="feedback<=0 skill=count", base="demo")
client.flywheel.get(run["id"])["steps"]      # each step's status, output, progress, wall time
client.flywheel.resume(run["id"])            # again from the step that failed
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from lmdeck.sdk.namespace import Namespace


class Flywheel(Namespace):
    """The flywheel API (``/api/flywheel/runs``)."""

    name = "flywheel"

    def run(self, *, route: str, base: str, **fields: Any) -> dict[str, Any]:
        """Start a run (its record, status ``running``), or with ``dry_run=True`` its plan (changes nothing);
        ``fields`` are those of :class:`lmdeck.protocol.flywheel.FlywheelRunRequest`."""
        body = {"route": route, "base": base, **{k: v for k, v in fields.items() if v is not None}}
        answer: dict[str, Any] = self.client.post("/api/flywheel/runs", json=body)
        return answer

    def get(self, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.client.get(f"/api/flywheel/runs/{quote(run_id, safe='')}")
        return found

    def list(self, *, limit: int = 100) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.client.get("/api/flywheel/runs", params={"limit": limit})["data"]
        return data

    def resume(self, run_id: str) -> dict[str, Any]:
        resumed: dict[str, Any] = self.client.post(f"/api/flywheel/runs/{quote(run_id, safe='')}/resume")
        return resumed


NAMESPACE = Flywheel
