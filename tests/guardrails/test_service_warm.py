"""GuardrailService.warm: instances with a warm() load their models in worker threads as the gateway starts."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from lmdeck.guardrails.base import PASS, GuardContext, Verdict
from lmdeck.guardrails.config import GuardrailConfig
from lmdeck.guardrails.service import GuardrailService


class Loads:
    name = "loads"
    cost = "fast"
    stages = frozenset({"input"})

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.loaded_in: list[int] = []

    def warm(self) -> None:
        self.loaded_in.append(threading.get_ident())
        if self.fail:
            raise RuntimeError("model file missing")

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        return PASS


class Plain:
    name = "plain"
    cost = "fast"
    stages = frozenset({"input"})

    async def check(self, text: str, ctx: GuardContext) -> Verdict:
        return PASS


async def test_warm_loads_each_instance_that_can_off_the_event_loop(caplog: pytest.LogCaptureFixture) -> None:
    good, bad = Loads(), Loads(fail=True)
    service = GuardrailService(GuardrailConfig({"good": good, "bad": bad, "plain": Plain()}), lambda name: None)
    with caplog.at_level(logging.ERROR, logger="lmdeck.guardrails.service"):
        service.warm()
        await asyncio.gather(*list(service._warming))
    assert len(good.loaded_in) == 1 and len(bad.loaded_in) == 1
    assert threading.get_ident() not in good.loaded_in
    assert "guardrail 'bad' could not load ahead of its first check" in caplog.text
    await service.stop()


async def test_the_built_in_detectors_can_be_warmed() -> None:
    from lmdeck.guardrails.builtin.language import OutputLanguage
    from lmdeck.guardrails.builtin.secrets import SecretsGuardrail

    for guard in (SecretsGuardrail(), OutputLanguage(allowed=["en"])):
        await asyncio.to_thread(guard.warm)
