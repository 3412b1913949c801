"""From guardrail verdicts to OpenAI's moderation result (``lmdeck.guardrails.moderations``)."""

from __future__ import annotations

from typing import Any

import pytest

from lmdeck.guardrails.base import Verdict
from lmdeck.guardrails.config import Attached, GuardrailConfig
from lmdeck.guardrails.moderations import ModerationServing
from lmdeck.guardrails.service import Checked, GuardrailService
from lmdeck.protocol import APIError
from lmdeck.protocol.guardrails import GuardrailUse
from lmdeck.protocol.moderations import OPENAI_CATEGORIES


def serving() -> ModerationServing:
    config = GuardrailConfig(kinds={"pii": "pii", "inj": "injection", "words": "regex"})
    service = GuardrailService(config, lambda _: None)
    return ModerationServing(service, lambda _: None, sink=None, admit=None)  # type: ignore[arg-type]


def checked(name: str, verdict: Verdict | None, error: str | None = None) -> Checked:
    guardrail: Any = None
    return Checked(Attached(name, guardrail, GuardrailUse(use=name)), verdict, 1.0, error)


def test_verdicts_become_lmdeck_categories_and_openai_ones_stay_unjudged() -> None:
    result = serving().result(
        [
            checked("pii", Verdict("pass")),
            checked("inj", Verdict("block", score=0.93, reason="prompt injection")),
            checked("words", Verdict("pass")),
        ]
    )
    assert result.flagged
    assert result.categories["lmdeck/prompt_injection"] and result.category_scores["lmdeck/prompt_injection"] == 0.93
    assert not result.categories["lmdeck/pii"] and not result.categories["lmdeck/regex"]
    assert all(not result.categories[c] and result.category_scores[c] == 0.0 for c in OPENAI_CATEGORIES)


def test_a_text_no_guardrail_flags_is_not_flagged() -> None:
    assert not serving().result([checked("pii", Verdict("pass")), checked("words", Verdict("pass"))]).flagged


@pytest.mark.parametrize(("error", "status"), [("TimeoutError", 503), ("TooLargeToCheck", 413)])
def test_an_unchecked_text_is_never_reported_clean(error: str, status: int) -> None:
    with pytest.raises(APIError) as caught:
        serving().result([checked("pii", None, error)])
    assert caught.value.status == status and "'pii'" in caught.value.message
