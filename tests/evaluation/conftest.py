from __future__ import annotations

import pytest

from lmdeck.evaluation import EvaluatorContext, EvaluatorRegistry, load_evaluators


@pytest.fixture(scope="session")
def evaluators() -> EvaluatorRegistry:
    return load_evaluators()


@pytest.fixture
def ctx() -> EvaluatorContext:
    return EvaluatorContext()
