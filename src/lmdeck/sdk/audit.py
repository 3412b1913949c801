"""``client.audit``: the hash-chained log of admin actions (an admin key is needed).

for entry in client.audit.list(action="key.revoked"):
    print(entry.seq, entry.actor, entry.target)
verdict = client.audit.verify()             # ok, or the first edited or deleted entry
"""

from __future__ import annotations

from lmdeck.protocol.access import AuditEntryOut, AuditVerdictOut
from lmdeck.sdk.namespace import Namespace


class Audit(Namespace):
    """The audit API (``/api/audit``)."""

    name = "audit"

    def list(
        self,
        *,
        after: int = 0,
        limit: int = 100,
        action: str | None = None,
        target: str | None = None,
        actor: str | None = None,
    ) -> list[AuditEntryOut]:
        params = {"after": after, "limit": limit, "action": action, "target": target, "actor": actor}
        return [AuditEntryOut.model_validate(e) for e in self.client.get("/api/audit", params=params)["data"]]

    def verify(self) -> AuditVerdictOut:
        return AuditVerdictOut.model_validate(self.client.get("/api/audit/verify"))


NAMESPACE = Audit
