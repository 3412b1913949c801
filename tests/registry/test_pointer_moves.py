"""Moves of one alias or label are serialised: concurrent moves leave one history chain, and
``expected_version`` refuses a lost update with a 409 (store, API, SDK and CLI)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lmdeck.cli.main import app as cli
from lmdeck.db import Database
from lmdeck.db.scratch import scratch_database
from lmdeck.protocol import APIError
from lmdeck.protocol.registry import ModelVersionSpec, PromptVersionSpec
from lmdeck.registry.labels import LabelMove, LabelStore
from lmdeck.registry.versions import Kind, VersionStore
from lmdeck.sdk import Client, LMDeckError

from .conftest import LiveServer

MOVES = 40
VERSIONS = 5


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A store many connections reach at once (a file, not the single-connection in-memory one)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'pointers.db'}")
        db.migrate()
        yield db
        db.dispose()
        return
    server = os.environ.get("LMDECK_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("set LMDECK_TEST_POSTGRES_URL (scripts/test-services.sh does) to test on PostgreSQL")
    with scratch_database(server) as url:
        db = Database(url)
        db.migrate()
        try:
            yield db
        finally:
            db.dispose()


def pointer_store(db: Database, kind: Kind) -> LabelStore:
    versions: VersionStore[Any] = VersionStore(db, kind)
    for n in range(VERSIONS):
        spec = ModelVersionSpec(model=f"m-{n}") if kind == "model" else PromptVersionSpec(text=f"v{n}")
        versions.create("bot", spec, actor=None)
    return LabelStore(db, {kind: versions})


def together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` for i in range(count), each in its own thread, all released at once."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def assert_one_chain(moves: list[LabelMove], final: int | None) -> None:
    """Oldest first, each move replaces the version the one before it set, and the last one is where it points."""
    assert moves, "no move was recorded"
    assert moves[0].from_version is None
    for before, after in pairwise(moves):
        assert after.from_version == before.to_version, (before, after)
        assert after.at > before.at
    assert moves[-1].to_version == final


@pytest.mark.parametrize("kind", ["model", "prompt"])
def test_concurrent_moves_form_one_history(shared_db: Database, kind: Kind) -> None:
    labels = pointer_store(shared_db, kind)

    def move(i: int) -> LabelMove | None:
        if i % 8 == 7:
            return labels.rollback(kind, "bot", "production", actor=f"key:{i}", reason="back")
        return labels.move(kind, "bot", "production", i % VERSIONS + 1, actor=f"key:{i}", reason=str(i))

    results = together(MOVES, move)
    recorded = [r for r in results if isinstance(r, LabelMove)]
    # A rollback with nothing before it is refused (404 or 409); nothing else may fail.
    refusals = ("nothing_to_roll_back", "not_found")
    unexpected = [r for r in results if isinstance(r, Exception) and getattr(r, "code", None) not in refusals]
    assert not unexpected, unexpected
    history = list(reversed(labels.history(kind, "bot", "production", limit=None)))
    assert sorted(m.id for m in history) == sorted(m.id for m in recorded)
    with shared_db.engine.connect() as conn:
        assert_one_chain(history, labels.current(conn, kind, "bot", "production"))


@pytest.mark.parametrize("kind", ["model", "prompt"])
def test_expected_version_lets_one_of_two_racing_moves_through(shared_db: Database, kind: Kind) -> None:
    labels = pointer_store(shared_db, kind)
    labels.move(kind, "bot", "production", 1, actor=None, reason=None)
    for attempt in range(5):
        with shared_db.engine.connect() as conn:
            seen = labels.current(conn, kind, "bot", "production")
        targets = [v for v in range(1, VERSIONS + 1) if v != seen][:2]
        results = together(
            2,
            lambda i, seen=seen, targets=targets, reason=str(attempt): labels.move(
                kind, "bot", "production", targets[i], actor=None, reason=reason, expected_version=seen
            ),
        )
        won = [r for r in results if isinstance(r, LabelMove)]
        lost = [r for r in results if isinstance(r, APIError)]
        assert len(won) == 1 and len(lost) == 1, results
        assert lost[0].status == 409 and lost[0].code == "version_conflict" and lost[0].param == "expected_version"
        assert f"points at version {won[0].to_version}, not {seen}" in lost[0].message
    assert_one_chain(list(reversed(labels.history(kind, "bot", "production", limit=None))), won[0].to_version)


def test_expected_version_through_the_sdk_api_and_cli(live_server: LiveServer) -> None:
    admin = Client(live_server.base_url, live_server.keys["admin"])
    admin.prompts.create("greet", text="Hello {{ name }}", variables={"name": "string"})
    admin.prompts.create("greet", text="Hi {{ name }}", variables={"name": "string"})
    admin.models.register("bot")
    for n in (1, 2):
        admin.models.create_version("bot", provider="fake", model=f"m-{n}")

    assert admin.prompts.label("greet", "production", 1)["changed"]
    with pytest.raises(LMDeckError) as stale:
        admin.prompts.label("greet", "production", 2, expected_version=2)
    assert stale.value.status == 409 and stale.value.code == "version_conflict"
    assert stale.value.param == "expected_version" and "points at version 1" in stale.value.message
    assert admin.prompts.label("greet", "production", 2, expected_version=1)["from_version"] == 1
    with pytest.raises(LMDeckError) as late_rollback:
        admin.prompts.rollback("greet", "production", expected_version=1)
    assert late_rollback.value.status == 409
    assert admin.prompts.rollback("greet", "production", expected_version=2)["to_version"] == 1
    with pytest.raises(LMDeckError):
        admin.prompts.unlabel("greet", "production", expected_version=2)
    assert admin.prompts.unlabel("greet", "production", expected_version=1)["to_version"] is None

    assert admin.models.alias("bot", "production", 1)["changed"]
    with pytest.raises(LMDeckError) as alias_conflict:
        admin.models.alias("bot", "production", 2, expected_version=2)
    assert alias_conflict.value.status == 409
    runner = CliRunner()
    target = ["--base-url", live_server.base_url, "--api-key", live_server.keys["admin"]]
    refused = runner.invoke(cli, ["models", "alias", "bot", "production", "2", "--expected-version", "2", *target])
    assert refused.exit_code != 0 and "points at version 1" in refused.output
    moved = runner.invoke(cli, ["models", "alias", "bot", "production", "2", "--expected-version", "1", *target])
    assert moved.exit_code == 0, moved.output
    back = runner.invoke(cli, ["prompts", "label", "greet", "staging", "2", "--expected-version", "1", *target])
    assert back.exit_code != 0 and "points at no version" in back.output
    assert [m["from_version"] for m in admin.models.history("bot", alias="production")] == [1, None]


def test_forty_concurrent_label_moves_through_the_api_form_one_history(live_server: LiveServer) -> None:
    admin = Client(live_server.base_url, live_server.keys["admin"])
    for n in range(VERSIONS):
        admin.prompts.create("busy", text=f"v{n} {{{{ name }}}}", variables={"name": "string"})
    results = together(
        MOVES,
        lambda i: Client(live_server.base_url, live_server.keys["admin"]).prompts.label(
            "busy", "production", i % VERSIONS + 1, reason=f"move {i}"
        ),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    moves = list(reversed(admin.prompts.history("busy", "production", limit=1000)))
    assert len(moves) == sum(1 for r in results if r["changed"])
    current = admin.prompts.show("busy")["labels"]["production"]
    assert moves[0]["from_version"] is None and moves[-1]["to_version"] == current
    for before, after in pairwise(moves):
        assert after["from_version"] == before["to_version"], (before, after)
