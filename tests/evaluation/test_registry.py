"""The evaluator registry, its entry-point hook, and evaluator specs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from lmdeck.evaluation import EvaluatorContext, EvaluatorError, EvaluatorRegistry, EvaluatorSpec, Sample, Score
from lmdeck.evaluation import registry as registry_module

BUILT_INS = {
    "exact",
    "contains",
    "regex",
    "json_valid",
    "json_schema",
    "numeric",
    "embedding_similarity",
    "rouge_l",
    "llm_judge",
}


def test_built_ins_register_through_the_entry_point_group(evaluators: EvaluatorRegistry) -> None:
    assert set(evaluators.names()) >= BUILT_INS
    for info in evaluators.info():
        assert info.description, f"{info.name} has no description"


def is_polite(sample: Sample) -> bool:
    """1 when the output says please."""
    return "please" in sample.output.lower()


def register_polite(registry: EvaluatorRegistry) -> None:
    registry.add_function("polite", is_polite)


@dataclass
class PluginEntryPoint:
    name: str
    hook: Any

    def load(self) -> Any:
        if self.hook is None:
            raise ImportError("No module named 'lmdeck_missing'")
        return self.hook


async def test_third_party_hook_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_entry_points(group: str) -> list[PluginEntryPoint]:
        assert group == "lmdeck.evaluators"
        return [PluginEntryPoint("polite", register_polite), PluginEntryPoint("broken", None)]

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    registry = registry_module.load_evaluators()
    assert registry.names() == ["polite"]
    assert [i.description for i in registry.info()] == ["1 when the output says please."]
    polite = registry.create(EvaluatorSpec(name="polite"), EvaluatorContext())
    assert (await polite.evaluate(Sample("Please wait"))).value == 1.0
    with pytest.raises(EvaluatorError, match="could not be loaded: No module named 'lmdeck_missing'"):
        registry.create(EvaluatorSpec(name="broken"), EvaluatorContext())


async def test_function_evaluators_accept_bools_numbers_and_scores() -> None:
    registry = EvaluatorRegistry()
    registry.add_function("short", lambda s: len(s.output) < 3)
    registry.add_function("half", lambda s: 0.5)
    registry.add_function("scored", lambda s: Score(0.25, label="meh"))

    async def async_fn(sample: Sample) -> bool:
        return True

    registry.add_function("later", async_fn)
    ctx = EvaluatorContext()
    results = {
        name: await registry.create(EvaluatorSpec(name=name), ctx).evaluate(Sample("hi"))
        for name in ("short", "half", "scored", "later")
    }
    assert [r.value for r in results.values()] == [1.0, 0.5, 0.25, 1.0]
    assert results["scored"].label == "meh"


async def test_function_returning_out_of_range_is_an_error() -> None:
    registry = EvaluatorRegistry()
    registry.add_function("broken", lambda s: 7)
    with pytest.raises(EvaluatorError, match=r"\[0, 1\]"):
        await registry.create(EvaluatorSpec(name="broken"), EvaluatorContext()).evaluate(Sample("x"))


def test_spec_parsing() -> None:
    assert EvaluatorSpec.parse("exact") == EvaluatorSpec(name="exact")
    spec = EvaluatorSpec.parse("tight=numeric:abs_tol=0.1&pick=first")
    assert (spec.key, spec.name, spec.options) == ("tight", "numeric", {"abs_tol": 0.1, "pick": "first"})
    assert EvaluatorSpec.parse("regex:pattern=a=b").options == {"pattern": "a=b"}
    assert [s.name for s in EvaluatorSpec.parse_many(["exact,rouge_l", "regex:pattern=x,y"])] == [
        "exact",
        "rouge_l",
        "regex",
    ]
    assert EvaluatorSpec.parse_many(["regex:pattern=x,y"])[0].options == {"pattern": "x,y"}


@pytest.mark.parametrize("text", ["", "9x", "a:b", "a:{not json}", "a:[1]"])
def test_bad_specs_are_refused(text: str) -> None:
    with pytest.raises(EvaluatorError):
        EvaluatorSpec.parse(text)


def test_duplicate_keys_must_be_aliased(evaluators: EvaluatorRegistry) -> None:
    specs = EvaluatorSpec.parse_many(["exact", "exact:case_sensitive=false"])
    with pytest.raises(EvaluatorError, match="given twice"):
        evaluators.create_all(specs, EvaluatorContext())
    aliased = EvaluatorSpec.parse_many(["exact", "loose=exact:case_sensitive=false"])
    assert [e.name for e in evaluators.create_all(aliased, EvaluatorContext())] == ["exact", "loose"]


def test_score_must_be_in_range() -> None:
    with pytest.raises(EvaluatorError):
        Score(1.5)
    with pytest.raises(EvaluatorError):
        Score(None)
    assert Score(None, label="ok").passed is False
