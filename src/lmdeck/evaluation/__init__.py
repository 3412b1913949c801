"""Evaluation: evaluators (one per module), eval runs and comparisons, feedback, online
evaluation and A/B experiments.

>>> from lmdeck.evaluation import EvaluatorSpec, load_evaluators
>>> registry = load_evaluators()
>>> "exact" in registry
True
"""

from lmdeck.evaluation.base import ChatReply, Evaluator, EvaluatorContext, InferenceClient, Sample, Score
from lmdeck.evaluation.registry import EvaluatorRegistry, load_evaluators
from lmdeck.protocol.evaluation import EvaluatorError, EvaluatorSpec

__all__ = [
    "ChatReply",
    "Evaluator",
    "EvaluatorContext",
    "EvaluatorError",
    "EvaluatorRegistry",
    "EvaluatorSpec",
    "InferenceClient",
    "Sample",
    "Score",
    "load_evaluators",
]
