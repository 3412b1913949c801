"""The reference-based evaluators: exact, contains, regex, numeric, ROUGE-L."""

from __future__ import annotations

import pytest

from lmdeck.evaluation import EvaluatorContext, EvaluatorError, EvaluatorRegistry, EvaluatorSpec, Sample


async def score(registry: EvaluatorRegistry, spec: str, sample: Sample) -> float | None:
    evaluator = registry.create(EvaluatorSpec.parse(spec), EvaluatorContext())
    return (await evaluator.evaluate(sample)).value


@pytest.mark.parametrize(
    ("spec", "output", "expected", "want"),
    [
        ("exact", "42", "42", 1.0),
        ("exact", " 42\n", 42, 1.0),
        ("exact", "43", "42", 0.0),
        ("exact", "Paris", "paris", 0.0),
        ("exact:case_sensitive=false", "Paris", "paris", 1.0),
        ("exact", "b", ["a", "b"], 1.0),
        ("contains", "The capital is Paris.", "Paris", 1.0),
        ("contains", "The capital is Lyon.", "Paris", 0.0),
        ('contains:value=["a","z"]', "abc", None, 0.5),
        ('contains:value=["a","z"]&mode="any"', "abc", None, 1.0),
        ("regex:pattern=^\\d+$&full=true", " 123 ", None, 1.0),
        ("regex:pattern=^\\d+$&full=true", "12a", None, 0.0),
        ("regex:pattern=hello&flags=i", "HeLLo there", None, 1.0),
        ("regex", "order 77", "\\d+", 1.0),
        ("numeric", "The answer is 12.", 12, 1.0),
        ("numeric", "The answer is 13.", "12", 0.0),
        ("numeric:abs_tol=1", "13", 12, 1.0),
        ("numeric:rel_tol=0.1", "1,050", 1000, 1.0),
        ('numeric:pick="first"', "7 then 12", 12, 0.0),
        ('numeric:pick="only"', "7 then 12", 12, 0.0),
        ("numeric", "no digits", 12, 0.0),
        ("numeric", "-3", -3, 1.0),
        ("rouge_l", "the cat sat on the mat", "the cat sat on the mat", 1.0),
        ("rouge_l", "dogs bark", "the cat sat", 0.0),
    ],
)
async def test_reference_evaluators(
    evaluators: EvaluatorRegistry, spec: str, output: str, expected: object, want: float
) -> None:
    assert await score(evaluators, spec, Sample(output, expected=expected)) == pytest.approx(want)


async def test_rouge_l_partial_overlap(evaluators: EvaluatorRegistry) -> None:
    # LCS("the cat sat", "the cat sat down") = 3: precision 1, recall 3/4, F = 6/7.
    value = await score(evaluators, "rouge_l", Sample("the cat sat", expected="the cat sat down"))
    assert value == pytest.approx(6 / 7)


async def test_missing_reference_scores_zero_with_a_reason(evaluators: EvaluatorRegistry) -> None:
    evaluator = evaluators.create(EvaluatorSpec.parse("exact"), EvaluatorContext())
    result = await evaluator.evaluate(Sample("x"))
    assert result.value == 0.0 and result.label == "no_reference"
    assert "expected" in result.explanation


async def test_explanations_say_what_was_compared(evaluators: EvaluatorRegistry) -> None:
    evaluator = evaluators.create(EvaluatorSpec.parse("numeric:abs_tol=0.5"), EvaluatorContext())
    result = await evaluator.evaluate(Sample("12.9", expected=12))
    assert result.value == 0.0
    assert "got 12.9" in result.explanation and "expected 12" in result.explanation


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("regex:pattern=(", "not a valid regular expression"),
        ("regex:pattern=a&flags=q", "unknown flags"),
        ('numeric:pick="middle"', "pick must be"),
        ("numeric:abs_tol=-1", ">= 0"),
        ("exact:colour=1", "its options are"),
        ("nope", "unknown evaluator 'nope'"),
        ('contains:mode="some"', "mode must be"),
    ],
)
def test_bad_options_name_the_fix(evaluators: EvaluatorRegistry, spec: str, fragment: str) -> None:
    with pytest.raises(EvaluatorError, match=fragment):
        evaluators.create(EvaluatorSpec.parse(spec), EvaluatorContext())
