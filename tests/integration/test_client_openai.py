"""The official ``openai`` SDK against a real ``lmdeck serve``: a call, model retrieval and each failure's exception."""

from __future__ import annotations

import openai
import pytest
from client_matrix import FAILURES, Failure, arrange, client_gateway

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess

USER = [{"role": "user", "content": "hello there"}]
EXCEPTIONS: dict[Failure, type[openai.APIStatusError]] = {
    401: openai.AuthenticationError,
    404: openai.NotFoundError,
    400: openai.BadRequestError,
    429: openai.RateLimitError,
}


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    return client_gateway(gateway, fake_upstream)


def test_a_call_and_a_model_lookup(gw: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key=gw.admin_key, max_retries=0, timeout=10)
    assert client.chat.completions.create(model="chat", messages=USER).choices[0].message.content == "hello there"
    assert client.models.retrieve("chat").id == "chat"


@pytest.mark.parametrize("failure", FAILURES)
def test_each_failure_raises_the_sdks_exception(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess, failure: Failure
) -> None:
    call = arrange(failure, fake_upstream, gw.admin_key)
    client = openai.OpenAI(base_url=gw.base_url, api_key=call["key"], max_retries=0, timeout=10)
    with pytest.raises(EXCEPTIONS[failure]) as raised:
        client.chat.completions.create(model=call["model"], messages=USER, **call["fields"])
    assert raised.value.status_code == failure
    if failure == 400:
        assert raised.value.param == "temperature"  # type: ignore[attr-defined]
