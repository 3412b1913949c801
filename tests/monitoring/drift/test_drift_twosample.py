"""The two-sample tests, texts and windows drift is built on (synthetic vectors: no model)."""

from __future__ import annotations

import numpy as np
import pytest

from lmdeck.monitoring.drift.loading import load_drift_tests
from lmdeck.monitoring.drift.report import holm
from lmdeck.monitoring.drift.texts import answer_text, is_refusal, prompt_text
from lmdeck.monitoring.drift.twosample import centroid_test, classifier_test, mmd_test
from lmdeck.monitoring.drift.windows import WindowError, Windows, parse_duration


def _samples(shift: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(80, 16)), rng.normal(size=(80, 16)) + shift


@pytest.mark.parametrize("test", [mmd_test, centroid_test, classifier_test])
def test_each_test_finds_a_shift_and_not_noise(test: object) -> None:
    same, shifted = test(*_samples(0.0)), test(*_samples(0.6))  # type: ignore[operator]
    assert same.p_value > 0.05 and shifted.p_value < 0.01


def test_permutation_p_values_are_seeded_and_never_zero() -> None:
    x, y = _samples(3.0)
    first, again = mmd_test(x, y, permutations=199, seed=4), mmd_test(x, y, permutations=199, seed=4)
    assert first == again and first.p_value == pytest.approx(1 / 200)


def test_mmd_keeps_its_level_over_many_null_samples() -> None:
    # 50 pairs of samples from one distribution (seeded): a valid 5% test rejects about 2.5 of them.
    rejected = sum(mmd_test(*_samples(0.0, seed), permutations=99, seed=seed).p_value < 0.05 for seed in range(50))
    assert rejected <= 6


def test_texts_read_chat_completion_and_streamed_bodies() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ]
    }
    assert prompt_text(body) == "hi" and prompt_text({"prompt": "once"}) == "once" and prompt_text(None) is None
    assert answer_text({"content": "streamed"}) == "streamed"
    assert answer_text({"choices": [{"text": "completed"}]}) == "completed"
    assert is_refusal({"choices": [{"message": {"content": None, "refusal": "no"}}]}) is True
    assert is_refusal({"choices": [{"message": {"content": "x"}, "finish_reason": "content_filter"}]}) is True
    assert is_refusal({"content": "I can\u2019t help with that."}) is True
    assert is_refusal({"content": "I can help: 4"}) is False and is_refusal(None) is None


def test_windows_are_back_to_back_and_bad_durations_name_the_parameter() -> None:
    windows = Windows.trailing(reference="7d", current="12h", until=1000.0 * 86400)
    assert windows.current.until == 1000.0 * 86400 and windows.current.seconds == 12 * 3600
    assert windows.reference.until == windows.current.since and windows.reference.seconds == 7 * 86400
    assert parse_duration("90m", "x") == 5400 and parse_duration("1.5h", "x") == 5400
    for bad in ("0d", "7 parsecs", "400d", "-1h"):
        with pytest.raises(WindowError) as caught:
            parse_duration(bad, "reference")
        assert caught.value.param == "reference"


def test_builtin_tests_load_through_the_entry_point_group() -> None:
    registry = load_drift_tests()
    assert registry.defaults() == ["input_mmd", "output_length", "refusal_rate", "output_centroid", "evaluator_scores"]
    assert "input_classifier" in registry.tests


def test_holm_adjustment_matches_the_step_down_definition() -> None:
    # m = 4: sorted p-values times 4, 3, 2, 1, made non-decreasing, capped at 1, in the given order.
    assert holm([0.04, 0.01, 0.30, 0.02]) == pytest.approx([0.08, 0.04, 0.30, 0.06])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([]) == []
