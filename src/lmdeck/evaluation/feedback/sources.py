"""What feedback and annotation labels lend to datasets cut from traces.

Two things, registered on the dataset registry (which names no evaluation table itself):
the filter key ``feedback`` (``feedback<=0``: traces whose mean feedback value is at most 0)
and the correction sources ``feedback`` and ``annotations`` (the answer a person gave, taken
as a row's expected output)::

    add_feedback_sources(registry.datasets, FeedbackStore(db), AnnotationStore(db))
    await registry.datasets.from_traces("fixes", "feedback<=0 skill=count", corrections="feedback", ...)
"""

from __future__ import annotations

from lmdeck.evaluation.annotation.store import AnnotationStore
from lmdeck.evaluation.feedback.store import FeedbackStore
from lmdeck.protocol.traces import TraceRecord
from lmdeck.registry.dataset_registry import DatasetRegistry
from lmdeck.registry.trace_filter import OPS, FilterKey, Predicate, filter_error


def feedback_key(store: FeedbackStore) -> FilterKey:
    """The filter key ``feedback``: a trace's mean feedback value (over feedback with a value) compared
    with a number; a trace nobody rated matches no comparison."""

    def make(op: str, value: str) -> Predicate:
        try:
            limit = float(value)
        except ValueError:
            raise filter_error(f"feedback{op}{value}: expected a number (1 thumbs up, 0 down)") from None
        matching: list[set[str]] = []  # read on first use: parse() runs on the event loop, predicates off it

        def predicate(record: TraceRecord) -> bool:
            if not matching:
                matching.append(store.traces_with_value(op, limit))
            return record.id in matching[0]

        return predicate

    return FilterKey(predicate=make, ops=tuple(OPS), query_ops=())


def add_feedback_sources(datasets: DatasetRegistry, feedback: FeedbackStore, annotations: AnnotationStore) -> None:
    """Teach ``datasets`` the ``feedback`` filter key and the ``feedback``/``annotations`` corrections."""
    datasets.parser.add("feedback", feedback_key(feedback))
    datasets.corrections.add("feedback", feedback.corrections)
    datasets.corrections.add("annotations", annotations.corrections_of_traces)
