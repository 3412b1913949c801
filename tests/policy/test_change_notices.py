"""Key and budget changes announced to other processes, which reload at once (long before their refresh)."""

from __future__ import annotations

from pathlib import Path

import anyio

from lmdeck.db import Database
from lmdeck.pipeline.principal import Principal
from lmdeck.policy.services import PolicyServices
from lmdeck.protocol.access import BudgetPut, KeyCreate
from lmdeck.settings import Settings
from lmdeck.testing.notices import LoopbackNotices

ADMIN = Principal(key_id="key_admin", role="admin")
PATIENCE = 60.0


def open_policy(path: Path, settings: Settings) -> PolicyServices:
    """One process's policy services on the shared SQLite file."""
    db = Database(f"sqlite:///{path.as_posix()}")
    db.migrate()
    return PolicyServices.build(settings, db, announce_admin_key=False)


async def test_a_new_key_and_a_budget_reach_the_other_process_at_once(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path), "policy": {"refresh_interval": 3600}})
    path = tmp_path / "shared.db"
    writer, reader = open_policy(path, settings), open_policy(path, settings)
    sent, received = LoopbackNotices(), LoopbackNotices()
    sent.peers.append(received)
    writer.follow_changes(sent)
    reader.follow_changes(received)
    await reader.start()
    try:
        key, secret = await writer.access.create_key(ADMIN, KeyCreate(name="ci", role="developer"))
        assert sent.published == ["policy"]
        with anyio.fail_after(PATIENCE):
            while await reader.keys.authenticate(secret) is None:
                await anyio.sleep(0.02)
        await writer.budgets.put(ADMIN, BudgetPut(scope="key", subject_id=key.id, period="day", limit_usd=5))
        assert sent.published == ["policy", "policy"]
        with anyio.fail_after(PATIENCE):
            while not reader.budgets.statuses():
                await anyio.sleep(0.02)
        assert not received.published, "a reload caused by a notice announces nothing itself"
    finally:
        await reader.stop()
        await writer.stop()
        writer.db.dispose()
        reader.db.dispose()
