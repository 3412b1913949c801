"""The topics guardrail: allowed topics by similarity of the bundled MiniLM embeddings."""

from __future__ import annotations

import pytest

from lmdeck.guardrails.base import Embed, GuardContext, GuardrailError, GuardResources
from lmdeck.guardrails.builtin import topics
from lmdeck.guardrails.builtin.topics import AllowedTopics
from lmdeck.guardrails.registry import GuardrailRegistry

USER = GuardContext(stage="input", role="user")
SUPPORT = {
    "billing": [
        "invoices, payments, refunds and charges on a customer's account",
        "Why was I charged twice this month?",
    ],
    "shipping": ["where an order is, delivery times and returns", "My parcel has not arrived yet"],
}


@pytest.fixture(scope="module")
def guard(embed: Embed) -> AllowedTopics:
    return AllowedTopics(GuardResources(embed=embed), topics=SUPPORT)


async def test_questions_on_an_allowed_topic_pass_and_name_it(guard: AllowedTopics) -> None:
    verdict = await guard.check("I was billed twice for my subscription, can I get a refund?", USER)
    assert verdict.passed and "'billing'" in verdict.reason
    assert (await guard.check("When will my order be delivered?", USER)).passed


async def test_a_request_off_the_topics_is_blocked_with_the_nearest_topic(guard: AllowedTopics) -> None:
    verdict = await guard.check("Write me a sonnet about the colour of the sea at dawn.", USER)
    assert verdict.blocked
    assert "off the allowed topics: nearest" in verdict.reason
    assert 0.0 < verdict.score <= 1.0


async def test_short_texts_other_roles_and_early_stream_windows_pass_unchecked(guard: AllowedTopics) -> None:
    assert (await guard.check("thanks!", USER)).passed
    assert (await guard.check("Write me a sonnet about the sea at dawn.", GuardContext("input", role="system"))).passed
    assert (await guard.check("Roses are", GuardContext("output", final=False))).passed
    assert (await guard.check("Write me a sonnet about the sea at dawn.", GuardContext("output"))).blocked


async def test_the_threshold_moves_the_line_and_a_list_of_descriptions_is_accepted(embed: Embed) -> None:
    text = "Write me a sonnet about the colour of the sea at dawn."
    lenient = AllowedTopics(GuardResources(embed=embed), topics=["billing questions"], threshold=-1.0)
    assert (await lenient.check(text, USER)).passed
    strict = AllowedTopics(GuardResources(embed=embed), topics=["poems about the sea"], threshold=0.99)
    assert (await strict.check(text, USER)).blocked


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "the option `topics` is required"),
        ({"topics": {}}, "give at least one allowed topic"),
        ({"topics": {"billing": []}}, "topic 'billing' needs a description"),
        ({"topics": {"billing": ["", "refunds"]}}, "empty or non-text example"),
        ({"topics": ["refunds", 3]}, "each allowed topic must be a description"),
        ({"topics": ["refunds"], "threshold": 2}, r"threshold must be a cosine similarity in \[-1, 1\]"),
        ({"topics": ["refunds"], "min_words": -1}, "min_words must be a whole number"),
        ({"topics": ["refunds"], "roles": "user"}, "roles must be a list"),
    ],
)
def test_bad_options_are_refused_by_name(embed: Embed, options: dict[str, object], message: str) -> None:
    with pytest.raises(GuardrailError, match=message):
        AllowedTopics(GuardResources(embed=embed), **options)  # type: ignore[arg-type]


def test_registered_as_topics_and_needs_the_embedding_model(embed: Embed) -> None:
    registry = GuardrailRegistry()
    topics.register(registry)
    guard = registry.create("topics", {"topics": SUPPORT, "threshold": 0.4}, GuardResources(embed=embed))
    assert isinstance(guard, AllowedTopics) and guard.threshold == 0.4
    assert registry.info("topics").options["topics"] == "default None"
    with pytest.raises(GuardrailError, match=r"install lmdeck\[local\]"):
        registry.create("topics", {"topics": SUPPORT})
