"""``instructor`` (structured output through tool calls) on the OpenAI SDK, pointed at a real ``lmdeck serve``."""

from __future__ import annotations

import instructor
import openai
import pytest
from client_matrix import FAILURES, Failure, arrange, client_gateway
from instructor.core.exceptions import InstructorRetryException
from pydantic import BaseModel

from lmdeck.testing.servers import FakeUpstreamProcess, GatewayFactory, GatewayProcess

CAUSES: dict[Failure, type[openai.APIStatusError]] = {
    401: openai.AuthenticationError,
    404: openai.NotFoundError,
    400: openai.BadRequestError,
    429: openai.RateLimitError,
}


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def gw(gateway: GatewayFactory, fake_upstream: FakeUpstreamProcess) -> GatewayProcess:
    return client_gateway(gateway, fake_upstream)


def structured(gw: GatewayProcess, key: str) -> instructor.Instructor:
    return instructor.from_openai(openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=10))


def test_a_structured_answer(gw: GatewayProcess, fake_upstream: FakeUpstreamProcess) -> None:
    person = structured(gw, gw.admin_key).chat.completions.create(
        model="chat", response_model=Person, messages=[{"role": "user", "content": "Ada"}], max_retries=0
    )
    assert isinstance(person, Person) and (person.name, person.age) == ("Ada", 1)
    [sent] = fake_upstream.requests()
    assert sent["body"]["tool_choice"] == {"type": "function", "function": {"name": "Person"}}


@pytest.mark.parametrize("failure", FAILURES)
def test_each_failure_raises_instructors_exception_caused_by_the_sdks(
    gw: GatewayProcess, fake_upstream: FakeUpstreamProcess, failure: Failure
) -> None:
    call = arrange(failure, fake_upstream, gw.admin_key)
    with pytest.raises(InstructorRetryException) as raised:
        structured(gw, call["key"]).chat.completions.create(
            model=call["model"],
            response_model=Person,
            messages=[{"role": "user", "content": "Ada"}],
            max_retries=0,
            **call["fields"],
        )
    assert isinstance(raised.value.__cause__, CAUSES[failure])
