"""The live registry across processes: a change committed through one gateway reaches another by its poll."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from lmdeck.db import Database
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol.registry import ModelVersionSpec
from lmdeck.providers import ProviderContext, ProviderRegistry
from lmdeck.registry.runtime import RegistryRuntime
from lmdeck.settings import Settings

ADMIN = Principal(key_id="k_admin", role="admin", name="admin")
#: How long a test waits for the other process's poll before it fails (the poll runs every 50 ms).
PATIENCE = 60.0


def open_runtime(path: Path, settings: Settings) -> RegistryRuntime:
    """The registry of one gateway process: its own engine on the shared SQLite file."""
    db = Database(f"sqlite:///{path.as_posix()}")
    db.migrate()
    providers = ProviderRegistry()
    providers.add("fake", lambda target, ctx: None)  # type: ignore[arg-type,return-value]
    return RegistryRuntime(settings, db, providers, ProviderContext(settings, transport=None))  # type: ignore[arg-type]


@pytest.fixture
async def runtimes(tmp_path: Path) -> AsyncIterator[tuple[RegistryRuntime, RegistryRuntime]]:
    settings = Settings.model_validate({"data_dir": str(tmp_path), "registry": {"poll_interval": 0.05}})
    path = tmp_path / "shared.db"
    writer, reader = open_runtime(path, settings), open_runtime(path, settings)
    await reader.live.start()
    try:
        yield writer, reader
    finally:
        await reader.live.stop()
        for runtime in (writer, reader):
            await runtime.renderer.aclose()
            runtime.db.dispose()


async def seen_by(runtime: RegistryRuntime, revision: int) -> None:
    with anyio.fail_after(PATIENCE):
        while runtime.live.snapshot.revision < revision:
            await anyio.sleep(0.02)


async def test_a_version_and_an_alias_move_reach_the_other_process(
    runtimes: tuple[RegistryRuntime, RegistryRuntime],
) -> None:
    writer, reader = runtimes
    assert reader.live.snapshot.revision == writer.live.snapshot.revision
    await writer.models.create_version("support-bot", ModelVersionSpec(provider="fake", model="m-1"), ADMIN)
    await writer.models.move("support-bot", "production", 1, reason="first", principal=ADMIN)
    assert writer.live.snapshot.model("support-bot@production").version == 1, "the writer sees it at once"

    await seen_by(reader, writer.live.snapshot.revision)
    assert reader.live.snapshot.model("support-bot@production").spec.model == "m-1"
    assert reader.resolver.resolve("support-bot@production").key == ("support-bot", 1)

    await writer.models.create_version("support-bot", ModelVersionSpec(provider="fake", model="m-2"), ADMIN)
    await writer.models.move("support-bot", "production", 2, reason="second", principal=ADMIN)
    await seen_by(reader, writer.live.snapshot.revision)
    assert reader.resolver.resolve("support-bot@production").key == ("support-bot", 2)


async def test_without_its_poll_a_process_keeps_its_snapshot(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path)})
    path = tmp_path / "shared.db"
    writer, idle = open_runtime(path, settings), open_runtime(path, settings)
    try:
        before = idle.live.snapshot
        await writer.models.create_version("support-bot", ModelVersionSpec(provider="fake", model="m-1"), ADMIN)
        assert idle.live.snapshot is before, "nothing reaches a process between its polls"
        await idle.live.refresh()
        assert idle.live.snapshot.revision == writer.live.snapshot.revision
    finally:
        for runtime in (writer, idle):
            await runtime.renderer.aclose()
            runtime.db.dispose()
