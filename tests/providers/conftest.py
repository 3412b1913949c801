"""Fixtures for the local provider: a tiny random model (it never stops before max_tokens) in a model directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import torch

from lmdeck.local.random_model import write_random_model
from lmdeck.providers.base import ProviderContext
from lmdeck.providers.local import LocalProvider
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.settings import Settings, TargetConfig


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("local-models")
    write_random_model(root / "tiny")
    return root


@pytest.fixture
async def ctx(model_dir: Path) -> AsyncIterator[ProviderContext]:
    settings = Settings.model_validate({"local": {"model_dir": str(model_dir), "max_batch_size": 4}})
    async with httpx.AsyncClient() as http:
        yield ProviderContext(settings=settings, transport=HttpxTransport(http))


@pytest.fixture
async def tiny(ctx: ProviderContext) -> AsyncIterator[LocalProvider]:
    provider = LocalProvider(TargetConfig(provider="local", model="tiny"), ctx)
    yield provider
    await provider.aclose()
