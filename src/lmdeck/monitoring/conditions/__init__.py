"""Rule kinds: how a rule's signal becomes, per group, a value and whether the alert condition holds.

One kind per module behind :class:`~lmdeck.monitoring.conditions.base.Condition`; the evaluator looks a
rule's kind up in :data:`CONDITIONS` (built-in kinds; anomaly detectors themselves are plugins).
"""

from lmdeck.monitoring.anomaly.base import DetectorRegistry
from lmdeck.monitoring.conditions.anomaly import AnomalyCondition
from lmdeck.monitoring.conditions.base import Condition, ConditionError, Reading
from lmdeck.monitoring.conditions.budget_forecast import BudgetForecastCondition
from lmdeck.monitoring.conditions.burn_rate import BurnRateCondition
from lmdeck.monitoring.conditions.threshold import ThresholdCondition


def conditions(detectors: DetectorRegistry) -> dict[str, Condition]:
    """The condition of each rule kind; ``detectors`` serve the ``anomaly`` kind."""
    return {
        "threshold": ThresholdCondition(),
        "anomaly": AnomalyCondition(detectors),
        "burn_rate": BurnRateCondition(),
        "budget_forecast": BudgetForecastCondition(),
    }


__all__ = ["Condition", "ConditionError", "Reading", "conditions"]
