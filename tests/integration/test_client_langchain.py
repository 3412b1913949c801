"""LangChain (``langchain-openai``'s ChatOpenAI) pointed at a real ``lmdeck serve``."""

from __future__ import annotations

import pytest
from client_matrix import FAILURES, Failure, arrange, client_gateway
from langchain_core.exceptions import (
    ModelAuthenticationError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelRateLimitError,
)
from langchain_openai import ChatOpenAI

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess

EXCEPTIONS: dict[Failure, type[Exception]] = {
    401: ModelAuthenticationError,
    404: ModelNotFoundError,
    400: ModelInvalidRequestError,
    429: ModelRateLimitError,
}


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    return client_gateway(gateway, fake_upstream)


def chat_model(gw: GatewayProcess, key: str, model: str = "chat") -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=gw.base_url, api_key=key, max_retries=0, timeout=10)  # type: ignore[arg-type]


def test_invoke_and_stream(gw: GatewayProcess) -> None:
    llm = chat_model(gw, gw.admin_key)
    assert llm.invoke("hello there").content == "hello there"
    assert "".join(str(chunk.content) for chunk in llm.stream("one two three")) == "one two three"


@pytest.mark.parametrize("failure", FAILURES)
def test_each_failure_raises_langchains_exception(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess, failure: Failure
) -> None:
    call = arrange(failure, fake_upstream, gw.admin_key)
    llm = chat_model(gw, call["key"], call["model"]).bind(**call["fields"])
    with pytest.raises(EXCEPTIONS[failure]):
        llm.invoke("hello there")
