import pytest

from lmdeck.cache.semantic.verify import TermVerifier


@pytest.fixture(scope="module")
def verifier() -> TermVerifier:
    return TermVerifier()


@pytest.mark.parametrize(
    ("query", "cached"),
    [
        ("Convert 10 miles to km.", "How many km are in 10 miles?"),
        ("What is 15% of 240?", "How much is fifteen percent of 240?"),
        ("Is it safe to take ibuprofen with coffee?", "Is taking ibuprofen with coffee safe?"),
        ("Track order a1b2c3.", "Where is my order a1b2c3?"),
    ],
)
def test_paraphrases_with_the_same_terms_pass(verifier: TermVerifier, query: str, cached: str) -> None:
    assert verifier(query, cached)


@pytest.mark.parametrize(
    ("query", "cached"),
    [
        ("Convert 10 miles to km.", "Convert 12 miles to km."),  # a number
        ("What is 15% of 240?", "What is twenty percent of 240?"),  # a number word
        ("Is the museum open on Mondays?", "Is the museum not open on Mondays?"),  # a negation
        ("How do I turn on notifications?", "How do I turn off notifications?"),  # a polar stop word
        ("What is the capital of France?", "What is the capital of Germany?"),  # an entity
        ("Track order a1b2c3.", "Track order d4e5f6."),  # an identifier
    ],
)
def test_near_misses_fail(verifier: TermVerifier, query: str, cached: str) -> None:
    assert not verifier(query, cached)


def test_terms_read_numbers_negations_and_content(verifier: TermVerifier) -> None:
    terms = verifier.terms("I don't have 2 dogs, I have three cats")
    assert terms.numbers == frozenset({2.0, 3.0})
    assert terms.negated
    assert terms.content == frozenset({"dog", "cat"})
