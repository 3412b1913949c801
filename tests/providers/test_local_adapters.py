"""The local provider with LoRA adapters: a route target's ``options.adapter``, and its refusals."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from lmdeck.local.demo_model import DEMO_MODEL_DIR
from lmdeck.local.random_adapter import write_random_adapter
from lmdeck.protocol import ChatCompletionRequest
from lmdeck.providers.base import ProviderContext, UpstreamError
from lmdeck.providers.local import LocalProvider
from lmdeck.providers.transport_httpx import HttpxTransport
from lmdeck.settings import ConfigError, Settings, TargetConfig


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_adapter(DEMO_MODEL_DIR, tmp_path_factory.mktemp("adapters") / "a1", seed=1)


@pytest.fixture
async def ctx() -> AsyncIterator[ProviderContext]:
    settings = Settings.model_validate({"local": {"device": "cpu", "max_batch_size": 4, "threads": 1}})
    async with httpx.AsyncClient() as http:
        context = ProviderContext(settings=settings, transport=HttpxTransport(http))
        yield context
        if context.local_runtime is not None:
            context.local_runtime.close()


def request(text: str = "Reverse: abcdef", **extra: object) -> ChatCompletionRequest:
    body = {"model": "r", "messages": [{"role": "user", "content": text}], "max_tokens": 12, "temperature": 0}
    return ChatCompletionRequest.model_validate({**body, **extra})


def target(**options: object) -> TargetConfig:
    return TargetConfig(provider="local", model="demo", options=options)


async def test_a_target_with_an_adapter_serves_the_base_model_with_it(ctx: ProviderContext, adapter: Path) -> None:
    base = LocalProvider(target(), ctx)
    tuned = LocalProvider(target(adapter=str(adapter)), ctx)
    try:
        plain = (await base.chat(request())).choices[0].message["content"]
        adapted = (await tuned.chat(request())).choices[0].message["content"]
        assert adapted != plain
        # One engine serves both: the base target still answers as the base model.
        assert (await base.chat(request())).choices[0].message["content"] == plain
        chunks = [c async for c in tuned.stream_chat(request(stream=True))]
        assert "".join(c.choices[0]["delta"].get("content", "") for c in chunks if c.choices) == adapted
    finally:
        await base.aclose()
        await tuned.aclose()


async def test_the_adapter_directory_is_checked_once_off_the_event_loop(
    ctx: ProviderContext, adapter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lmdeck.local.engine
    import lmdeck.providers.local

    threads: list[int] = []
    real = lmdeck.providers.local.check_adapter_dir

    def counted(path: str | Path) -> Path:
        threads.append(threading.get_ident())
        return real(path)

    def refused(path: str | Path) -> Path:
        raise AssertionError("the engine read the adapter directory on the event loop")

    monkeypatch.setattr(lmdeck.providers.local, "check_adapter_dir", counted)
    monkeypatch.setattr(lmdeck.local.engine, "check_adapter_dir", refused)
    tuned = LocalProvider(target(adapter=str(adapter)), ctx)
    try:
        first = (await tuned.chat(request())).choices[0].message["content"]
        assert (await tuned.chat(request())).choices[0].message["content"] == first
        chunks = [c async for c in tuned.stream_chat(request(stream=True))]
        assert "".join(c.choices[0]["delta"].get("content", "") for c in chunks if c.choices) == first
        assert len(threads) == 1 and threads[0] != threading.get_ident()
    finally:
        await tuned.aclose()


async def test_a_missing_adapter_directory_is_a_400_naming_the_fix(ctx: ProviderContext, tmp_path: Path) -> None:
    provider = LocalProvider(target(adapter=str(tmp_path / "gone")), ctx)
    try:
        for call in (provider.chat(request()), anext(provider.stream_chat(request(stream=True)))):
            with pytest.raises(UpstreamError) as refused:
                await call
            assert refused.value.status == 400
            assert refused.value.body is not None
            assert refused.value.body["error"]["code"] == "invalid_adapter"
            assert "no such directory; point `adapter` at a directory holding adapter_config.json" in str(refused.value)
    finally:
        await provider.aclose()


async def test_an_adapter_that_does_not_fit_the_model_is_a_400(ctx: ProviderContext, tmp_path: Path) -> None:
    from lmdeck.local.random_model import write_random_model

    other = write_random_model(tmp_path / "other")
    provider = LocalProvider(target(adapter=str(write_random_adapter(other, tmp_path / "wrong"))), ctx)
    try:
        with pytest.raises(UpstreamError, match="does not fit model 'demo'") as refused:
            await provider.chat(request())
        assert refused.value.status == 400
    finally:
        await provider.aclose()


def test_an_adapter_needs_an_unquantized_generative_model(ctx: ProviderContext, adapter: Path) -> None:
    with pytest.raises(ConfigError, match=r"set options\.quantize to none"):
        LocalProvider(target(adapter=str(adapter), quantize="int8"), ctx)
    with pytest.raises(ConfigError, match="embedding model"):
        LocalProvider(TargetConfig(provider="local", model="all-minilm-l6-v2", options={"adapter": str(adapter)}), ctx)
    with pytest.raises(ConfigError, match="must be the path of a LoRA adapter directory"):
        LocalProvider(target(adapter=3), ctx)
