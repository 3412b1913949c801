"""LiteLLM as a client (``litellm.completion`` with ``openai/<route>`` and ``api_base``) of a real ``lmdeck serve``."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import pytest
from client_matrix import FAILURES, Failure, arrange, client_gateway

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess

USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    # LiteLLM fetches its model price map from the network at import unless told to use its bundled copy.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    return litellm


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    return client_gateway(gateway, fake_upstream)


def complete(litellm: ModuleType, gw: GatewayProcess, key: str, model: str = "chat", **fields: Any) -> Any:
    return litellm.completion(
        model=f"openai/{model}", api_base=gw.base_url, api_key=key, messages=USER, num_retries=0, timeout=10, **fields
    )


def test_a_completion(litellm: ModuleType, gw: GatewayProcess) -> None:
    assert complete(litellm, gw, gw.admin_key).choices[0].message.content == "hello there"


@pytest.mark.parametrize("failure", FAILURES)
def test_each_failure_raises_litellms_exception(
    litellm: ModuleType, gw: GatewayProcess, fake_upstream: FakeUpstreamProcess, failure: Failure
) -> None:
    expected = {
        401: litellm.AuthenticationError,
        404: litellm.NotFoundError,
        400: litellm.BadRequestError,
        429: litellm.RateLimitError,
    }[failure]
    call = arrange(failure, fake_upstream, gw.admin_key)
    with pytest.raises(expected) as raised:
        complete(litellm, gw, call["key"], call["model"], **call["fields"])
    assert raised.value.status_code == failure
