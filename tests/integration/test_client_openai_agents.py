"""The OpenAI Agents SDK (``openai-agents``) on chat completions, pointed at a real ``lmdeck serve``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
from client_matrix import FAILURES, Failure, arrange, client_gateway

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess

EXCEPTIONS: dict[Failure, type[openai.APIStatusError]] = {
    401: openai.AuthenticationError,
    404: openai.NotFoundError,
    400: openai.BadRequestError,
    429: openai.RateLimitError,
}


@pytest.fixture(autouse=True)
def no_trace_export() -> None:
    # The SDK exports traces to OpenAI unless told not to; tests reach nothing outside loopback.
    set_tracing_disabled(True)


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    return client_gateway(gateway, fake_upstream)


@pytest.fixture
async def clients() -> AsyncIterator[list[openai.AsyncOpenAI]]:
    made: list[openai.AsyncOpenAI] = []
    yield made
    for client in made:
        await client.close()


def agent(clients: list[openai.AsyncOpenAI], gw: GatewayProcess, key: str, model: str, **settings: Any) -> Agent:
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=10)
    clients.append(client)
    return Agent(
        name="echo",
        instructions="Answer briefly.",
        model=OpenAIChatCompletionsModel(model=model, openai_client=client),
        model_settings=ModelSettings(**settings),
    )


async def test_a_run(gw: GatewayProcess, clients: list[openai.AsyncOpenAI]) -> None:
    result = await Runner.run(agent(clients, gw, gw.admin_key, "chat"), "hello there")
    assert result.final_output == "hello there"


@pytest.mark.parametrize("failure", FAILURES)
async def test_each_failure_raises_the_sdks_exception(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess, clients: list[openai.AsyncOpenAI], failure: Failure
) -> None:
    call = arrange(failure, fake_upstream, gw.admin_key)
    with pytest.raises(EXCEPTIONS[failure]) as raised:
        await Runner.run(agent(clients, gw, call["key"], call["model"], **call["fields"]), "hello there")
    assert raised.value.status_code == failure
