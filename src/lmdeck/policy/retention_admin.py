"""Serving class of ``/api/retention/policies`` and ``/api/traces/{id}/hold`` (admin): retention policies
and legal holds, each change in the audit log.

    admin = RetentionAdmin(db, audit, configured=settings.tracing.retention.policies)
    await admin.save(RetentionPolicySpec(name="a", team="team-a", body_days=7), actor="key:k_1")
    await admin.hold("0190...", actor="key:k_1", reason="litigation 2026-114")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio

from lmdeck.db import Database
from lmdeck.policy.audit import AuditLog
from lmdeck.protocol import APIError
from lmdeck.protocol.retention import RetentionPolicySpec
from lmdeck.tracing.expiry import set_hold
from lmdeck.tracing.retention import merged
from lmdeck.tracing.retention_policies import RetentionPolicyStore


def _dump(spec: RetentionPolicySpec | None) -> dict[str, Any] | None:
    return spec.model_dump(mode="json") if spec is not None else None


class RetentionAdmin:
    """Retention policies (stored ones replace the config file's by name or scope) and legal holds."""

    def __init__(self, db: Database, audit: AuditLog, configured: Sequence[RetentionPolicySpec] = ()) -> None:
        self.db = db
        self.audit = audit
        self.configured = list(configured)
        self.store = RetentionPolicyStore(db)

    async def policies(self) -> list[dict[str, Any]]:
        """The policies in force, each with ``source``: ``api`` (stored) or ``config``."""

        def read() -> list[dict[str, Any]]:
            stored = {p.name for p in self.store.list()}
            return [
                {**p.model_dump(mode="json"), "source": "api" if p.name in stored else "config"}
                for p in merged(self.store.list(), self.configured)
            ]

        return await anyio.to_thread.run_sync(read)

    async def save(self, spec: RetentionPolicySpec, actor: str) -> dict[str, Any]:
        """Create or replace a stored policy; ``created`` says which. 409 when another covers its scope."""

        def write() -> dict[str, Any]:
            try:
                before = self.store.save(spec, actor)
            except ValueError as exc:
                raise APIError(409, str(exc), param="name", code="retention_scope_taken") from None
            action = "retention.policy_created" if before is None else "retention.policy_updated"
            self.audit.append(actor, action, f"retention:{spec.name}", before=_dump(before), after=_dump(spec))
            return {**spec.model_dump(mode="json"), "source": "api", "created": before is None}

        return await anyio.to_thread.run_sync(write)

    async def delete(self, name: str, actor: str) -> None:
        """Delete a stored policy (a config file's policy is changed in the file). 404 when none is stored."""

        def write() -> None:
            before = self.store.delete(name)
            if before is None:
                configured = any(p.name == name for p in self.configured)
                hint = (
                    ": it comes from the config file (tracing.retention.policies); remove it there"
                    if configured
                    else ""
                )
                raise APIError(404, f"no stored retention policy {name!r}{hint}", code="not_found", param="name")
            self.audit.append(actor, "retention.policy_deleted", f"retention:{name}", before=_dump(before))

        await anyio.to_thread.run_sync(write)

    async def hold(self, trace_id: str, actor: str, *, held: bool, reason: str | None = None) -> dict[str, Any]:
        """Put a trace on legal hold (``held``) or release it; audited with ``reason``. 404 for no such trace."""

        def write() -> dict[str, Any]:
            before = set_hold(self.db, trace_id, held)
            if before is None:
                raise APIError(
                    404,
                    f"no stored trace {trace_id!r} (a trace is held once it is stored; retry after it lands)",
                    code="trace_not_found",
                    param="id",
                )
            action = "trace.held" if held else "trace.released"
            self.audit.append(
                actor,
                action,
                f"trace:{trace_id}",
                before={"legal_hold": before},
                after={"legal_hold": held, "reason": reason},
            )
            return {"id": trace_id, "legal_hold": held, "changed": before != held}

        return await anyio.to_thread.run_sync(write)
