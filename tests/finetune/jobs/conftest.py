"""A gateway in process whose fine-tuning service trains with :class:`FakeRunner` (a fake: see
``fakes.py``) and evaluates through the real pipeline and the bundled demo model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmdeck.app.assembly import Gateway, build_gateway
from lmdeck.app.factory import create_app
from lmdeck.finetune.jobs.service import FineTuningService
from lmdeck.local import skills
from lmdeck.settings import Settings
from lmdeck.testing.in_process import in_process_client
from lmdeck.tracing.memory import MemoryTraceSink

from .fakes import FakeRunner, identity_adapter, simple_preparer

ADMIN_KEY = "sk-lmdeck-finetune-Qm4Vz8Rt1Lp6Hx3Nb9Wc2Kj7Fs5Dy0"
ADMIN_ENV = "LMDECK_FINETUNE_TEST_ADMIN_KEY"


@dataclass
class Deck:
    """A gateway in process, a key per role, and keys of teams blue and red."""

    gateway: Gateway
    client: httpx.AsyncClient
    runner: FakeRunner
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def call(self, method: str, path: str, who: str = "blue-dev", **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, path, headers=self.auth(who), **kwargs)

    @property
    def service(self) -> FineTuningService:
        assert self.gateway.finetune is not None
        return self.gateway.finetune.service

    async def dataset(self, name: str, rows: list[dict[str, Any]], who: str = "blue-dev") -> str:
        response = await self.call("POST", f"/api/registry/datasets/{name}/versions", who, json={"rows": rows})
        assert response.status_code in (200, 201), response.text
        return f"{name}@{response.json()['version']}"


def count_rows(n: int, *, wrong: bool = False) -> list[dict[str, Any]]:
    """Held-out count examples of the demo model's skills (``wrong``: each answer replaced by nonsense)."""
    return [
        {"input": e.prompt, "expected": "no idea" if wrong else e.answer, "metadata": {"tag": e.skill}}
        for e in skills.heldout_set("count", n)
    ]


def skill_rows(n: int) -> list[dict[str, Any]]:
    """Held-out examples of the skills the demo model has (the regression set)."""
    rows = []
    for skill in ("reverse", "upper"):
        rows += [
            {"input": e.prompt, "expected": e.answer, "metadata": {"tag": skill}} for e in skills.heldout_set(skill, n)
        ]
    return rows


@pytest.fixture(scope="session")
def adapter_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Made here, not in a fake worker's thread: importing transformers from two threads at once races.
    return identity_adapter(tmp_path_factory.mktemp("identity-adapter"))


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv(ADMIN_ENV, ADMIN_KEY)
    return Settings.model_validate(
        {"data_dir": str(tmp_path / "data"), "admin_key": {"$env": ADMIN_ENV}, "registry": {"poll_interval": 0.2}}
    )


def make_keys(gateway: Gateway) -> dict[str, str]:
    policy = gateway.policy
    keys = {"admin": ADMIN_KEY}
    for role in ("developer", "viewer"):
        _, keys[role] = policy.identities.create_key(f"{role} key", role)
    for team in ("blue", "red"):
        created = policy.identities.create_team(team, team_id=f"team_{team}")
        _, keys[f"{team}-dev"] = policy.identities.create_key(f"{team} dev", "developer", team_id=created.id)
        _, keys[f"{team}-viewer"] = policy.identities.create_key(f"{team} viewer", "viewer", team_id=created.id)
    policy.keys.load()
    return keys


StartDeck = Callable[..., AbstractAsyncContextManager[Deck]]


@pytest.fixture
def start_deck(adapter_cache: Path) -> StartDeck:
    @asynccontextmanager
    async def start(
        settings: Settings, runner: FakeRunner | None = None, keys: dict[str, str] | None = None
    ) -> AsyncIterator[Deck]:
        gateway = build_gateway(settings, sink=MemoryTraceSink(), announce_admin_key=False)
        runner = runner or FakeRunner(adapter_cache)
        assert gateway.finetune is not None
        deps = gateway.finetune.service.deps
        deps.runners = {"local": runner, "fake": runner}
        deps.preparer = simple_preparer
        async with in_process_client(create_app(gateway=gateway), timeout=60) as client:
            yield Deck(gateway, client, runner, keys or make_keys(gateway))

    return start


@pytest.fixture
async def deck(settings: Settings, start_deck: StartDeck) -> AsyncIterator[Deck]:
    async with start_deck(settings) as running:
        yield running
