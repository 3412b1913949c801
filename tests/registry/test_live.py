"""The live registry across processes: a change committed through one gateway reaches another by its poll.

The first test runs the reader in a second OS process; the others open two engines on one SQLite file in
this process, which lets them look at the reader's snapshot directly.
"""

from __future__ import annotations

import json
import subprocess
import sys
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
from lmdeck.testing.notices import LoopbackNotices

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


#: The second process: a LiveRegistry polling the shared file. For each revision read from stdin it waits
#: until its snapshot has reached it, then prints what ``support-bot@production`` resolves to there.
READER = """
import json, sys, anyio
from lmdeck.db import Database
from lmdeck.registry.live import LiveRegistry

async def main() -> None:
    live = LiveRegistry(Database(sys.argv[1]), poll_interval=0.05)
    await live.start()
    print(json.dumps({"revision": live.snapshot.revision}), flush=True)
    while line := (await anyio.to_thread.run_sync(sys.stdin.readline)).strip():
        while live.snapshot.revision < int(line):
            await anyio.sleep(0.02)
        ref = live.snapshot.model("support-bot@production")
        print(json.dumps({"revision": live.snapshot.revision, "model": ref.spec.model}), flush=True)
    await live.stop()

anyio.run(main)
"""


async def answer(reader: subprocess.Popen[str], question: str | None = None) -> dict[str, object]:
    assert reader.stdin is not None and reader.stdout is not None
    if question is not None:
        reader.stdin.write(question + "\n")
        reader.stdin.flush()
    with anyio.fail_after(PATIENCE):
        line = await anyio.to_thread.run_sync(reader.stdout.readline, abandon_on_cancel=True)
    assert line, "the reader process exited early"
    return dict(json.loads(line))


async def test_an_alias_move_reaches_another_os_process_by_its_poll(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    writer = open_runtime(path, Settings.model_validate({"data_dir": str(tmp_path)}))
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, f"sqlite:///{path.as_posix()}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert (await answer(reader))["revision"] == writer.live.snapshot.revision
        for model in ("m-1", "m-2"):
            version = await writer.models.create_version(
                "support-bot", ModelVersionSpec(provider="fake", model=model), ADMIN
            )
            await writer.models.move("support-bot", "production", version.version, reason=model, principal=ADMIN)
            seen = await answer(reader, str(writer.live.snapshot.revision))
            assert seen == {"revision": writer.live.snapshot.revision, "model": model}
    finally:
        assert reader.stdin is not None
        reader.stdin.close()
        try:
            reader.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:  # it never saw a revision it was asked about
            reader.kill()
            reader.wait()
        await writer.renderer.aclose()
        writer.db.dispose()


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


async def test_a_notice_brings_the_other_process_s_poll_forward(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path), "registry": {"poll_interval": 3600}})
    path = tmp_path / "shared.db"
    writer, reader = open_runtime(path, settings), open_runtime(path, settings)
    sent, received = LoopbackNotices(), LoopbackNotices()
    sent.peers.append(received)
    writer.live.follow_changes(sent)
    reader.live.follow_changes(received)
    await reader.live.start()
    try:
        await writer.models.create_version("support-bot", ModelVersionSpec(provider="fake", model="m-1"), ADMIN)
        await writer.models.move("support-bot", "production", 1, reason="first", principal=ADMIN)
        assert sent.published and set(sent.published) == {"registry"}
        await seen_by(reader, writer.live.snapshot.revision)  # an hour before its poll would have come
        assert reader.live.snapshot.model("support-bot@production").spec.model == "m-1"
        assert not received.published, "a reload caused by a notice announces nothing itself"
    finally:
        await reader.live.stop()
        for runtime in (writer, reader):
            await runtime.renderer.aclose()
            runtime.db.dispose()
