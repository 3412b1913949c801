"""The data card kept with a dataset version: prepared by ``prepare_version``, read back through
``GET /api/registry/datasets/{name}/versions/{ref}/card``, the SDK and the CLI, with the dataset's
visibility."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.factory import create_app
from lmdeck.cli.main import app as cli
from lmdeck.db import Database
from lmdeck.finetune.prep import BaseModelInfo, prepare_version, read_jsonl
from lmdeck.pipeline.principal import Principal
from lmdeck.protocol import APIError
from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.training import DataCard, PrepOptions
from lmdeck.registry.dataset_registry import DatasetRegistry
from lmdeck.registry.datasets import DatasetStore
from lmdeck.sdk import Client, LMDeckError
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

ADMIN_ENV = "LMDECK_PREP_TEST_ADMIN_KEY"
ADMIN_KEY = "sk-lmdeck-prep-Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz2Xc4"
OPTIONS = PrepOptions(scrub_pii=False, stratify_by="skill", validation_fraction=0.25)
BLUE = Principal(key_id="blue-dev", role="developer", team_id="team_blue")
RED = Principal(key_id="red-dev", role="developer", team_id="team_red")


def rows() -> list[DatasetRow]:
    made = [
        DatasetRow(input=f"How many '{c}' in {w}?", expected=str(w.count(c)), metadata={"skill": "count"})
        for w in ("carrot", "banana", "pepper", "kiwi")
        for c in "aeiprt"
    ]
    made += [
        DatasetRow(input=f"What is {a} + 9?", expected=str(a + 9), metadata={"skill": "add"}) for a in (3, 14, 25, 36)
    ]
    return [*made, DatasetRow(input="unanswered", metadata={"skill": "add"})]


async def test_prepare_version_writes_the_files_and_keeps_the_card(
    database: Database, demo_base: BaseModelInfo, tmp_path: Path
) -> None:
    datasets = DatasetRegistry(database)
    version, _ = await datasets.create("counts", rows(), principal=BLUE)
    done = await prepare_version(
        datasets,
        "counts",
        str(version.version),
        principal=BLUE,
        options=OPTIONS,
        base=demo_base,
        directory=tmp_path / "d",
    )
    assert done.version == version and done.files.directory == tmp_path / "d"
    assert (
        read_jsonl(done.files.train) == done.dataset.train
        and read_jsonl(done.files.validation) == done.dataset.validation
    )
    card = done.dataset.card
    assert card.dataset == "counts@1" and card.rows_in == 29 and card.dropped == {"no_expected": 1}
    assert card.strata == {"add": {"train": 3, "validation": 1}, "count": {"train": 18, "validation": 6}}
    assert await datasets.card("counts", "1", BLUE) == card
    assert await datasets.card("counts", version.digest[:12], BLUE) == card
    # another team's developer neither prepares nor reads the version: it does not exist for them
    with pytest.raises(APIError) as hidden:
        await prepare_version(
            datasets, "counts", 1, principal=RED, options=OPTIONS, base=demo_base, directory=tmp_path / "red"
        )
    assert hidden.value.status == 404 and not (tmp_path / "red").exists()
    with pytest.raises(APIError) as unread:
        await datasets.card("counts", "1", RED)
    assert unread.value.status == 404
    # preparing again replaces the card
    again = await prepare_version(
        datasets,
        "counts",
        1,
        principal=BLUE,
        options=OPTIONS.model_copy(update={"seed": 9}),
        base=demo_base,
        directory=tmp_path / "again",
    )
    assert (await datasets.card("counts", "1", BLUE)).options.seed == 9 == again.dataset.card.options.seed


def test_card_store_round_trip(database: Database) -> None:
    store = DatasetStore(database)
    store.create("evals", [DatasetRow(input="2+2", expected="4")], actor=None)
    assert store.card("evals", 1) is None and store.card("evals", 2) is None
    card = DataCard(
        dataset="evals@1",
        base_model="demo",
        chat_template="t",
        options=PrepOptions(),
        rows_in=1,
        train=1,
        validation=0,
        dropped={"near_duplicate": 0},
        trace_ids=["a"],
        created_at=1.5,
    )
    store.set_card("evals", 1, card)
    assert store.card("evals", 1) == card
    with pytest.raises(APIError) as missing:
        store.set_card("evals", 2, card)
    assert missing.value.status == 404


@dataclass
class Deck:
    gateway: Gateway
    client: httpx.AsyncClient
    keys: dict[str, str]

    async def get(self, path: str, who: str) -> httpx.Response:
        return await self.client.get(path, headers={"authorization": f"Bearer {self.keys[who]}"})


@pytest.fixture
async def deck(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deck]:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path / "data"), "admin_key": {"$env": ADMIN_ENV}, "default_routes": False}
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    keys = {"admin": ADMIN_KEY}
    policy = gateway.policy
    for team in ("blue", "red"):
        created = policy.identities.create_team(team, team_id=f"team_{team}")
        for role in ("developer", "viewer"):
            _, keys[f"{team}-{role}"] = policy.identities.create_key(f"{team} {role}", role, team_id=created.id)
    policy.keys.load()
    async with in_process_client(create_app(gateway=gateway)) as client:
        yield Deck(gateway, client, keys)


async def test_card_endpoint(deck: Deck, demo_base: BaseModelInfo, tmp_path: Path) -> None:
    made = await deck.client.post(
        "/api/registry/datasets/counts/versions",
        json={"rows": [r.model_dump(mode="json") for r in rows()]},
        headers={"authorization": f"Bearer {deck.keys['blue-developer']}"},
    )
    assert made.status_code == 200, made.text
    path = "/api/registry/datasets/counts/versions/1/card"
    none = await deck.get(path, "blue-viewer")
    assert none.status_code == 404
    error = none.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == "not_found"
    assert "no data card" in error["message"] and "fine-tuning" in error["message"]

    datasets = deck.gateway.registry.datasets
    done = await prepare_version(
        datasets, "counts", "1", principal=BLUE, options=OPTIONS, base=demo_base, directory=tmp_path / "d"
    )
    shown = await deck.get(path, "blue-viewer")
    assert shown.status_code == 200, shown.text
    assert DataCard.model_validate(shown.json()) == done.dataset.card
    assert shown.json()["dropped"] == {"no_expected": 1} and shown.json()["train"] == 21
    assert (await deck.get(path, "admin")).status_code == 200
    for who in ("red-viewer", "red-developer"):  # another team's: as if the dataset did not exist
        hidden = await deck.get(path, who)
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
    for bad in (
        "/api/registry/datasets/counts/versions/2/card",
        "/api/registry/datasets/nope/versions/1/card",
        "/api/registry/datasets/counts/versions/0/card",
        "/api/registry/datasets/counts/versions/%25%25/card",
        f"/api/registry/datasets/counts/versions/{2**63}/card",
    ):
        answer = await deck.get(bad, "blue-viewer")
        assert 400 <= answer.status_code < 500 and set(answer.json()["error"]) == {
            "message",
            "type",
            "param",
            "code",
        }, bad
    # shared: every team reads it
    shared = await deck.client.patch(
        "/api/registry/datasets/counts",
        json={"visibility": "shared"},
        headers={"authorization": f"Bearer {deck.keys['blue-developer']}"},
    )
    assert shared.status_code == 200, shared.text
    assert (await deck.get(path, "red-viewer")).status_code == 200


@contextmanager
def serving(gateway: Gateway) -> Iterator[str]:
    """``gateway`` served by uvicorn on a loopback port in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(create_app(gateway=gateway), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # generous: a server starting on a loaded machine
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_cli_and_sdk_show_the_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_base: BaseModelInfo) -> None:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    settings = Settings.model_validate(
        {"data_dir": str(tmp_path / "data"), "admin_key": {"$env": ADMIN_ENV}, "default_routes": False}
    )
    gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
    admin = Principal(key_id="admin", role="admin")
    with serving(gateway) as url:
        client = Client(url, ADMIN_KEY)
        client.datasets.create("counts", [r.model_dump(mode="json") for r in rows()])
        with pytest.raises(LMDeckError) as missing:
            client.datasets.card("counts", 1)
        assert missing.value.status == 404
        runner, env = CliRunner(), {"LMDECK_BASE_URL": url, "LMDECK_API_KEY": ADMIN_KEY}
        refused = runner.invoke(cli, ["datasets", "card", "counts@1"], env=env)
        assert refused.exit_code == 1 and "no data card" in refused.output
        anyio.run(
            lambda: prepare_version(
                gateway.registry.datasets,
                "counts",
                1,
                principal=admin,
                options=OPTIONS,
                base=demo_base,
                directory=tmp_path / "d",
            )
        )
        card = client.datasets.card("counts", 1)
        assert card["dataset"] == "counts@1" and card["train"] == 21 and card["validation"] == 7
        shown = runner.invoke(cli, ["datasets", "card", "counts@1"], env=env)
        assert shown.exit_code == 0, shown.output
        assert "counts@1 for demo" in shown.output and "train 21, validation 7" in shown.output
        assert "no_expected 1" in shown.output and "count" in shown.output and "P95" in shown.output
        as_json = runner.invoke(cli, ["datasets", "card", "counts@1", "--json"], env=env)
        assert json.loads(as_json.output) == card
        bad = runner.invoke(cli, ["datasets", "card", "counts"], env=env)
        assert bad.exit_code == 2 and "NAME@VERSION" in bad.output
