"""Finding evaluators: a name → factory table filled by the ``lmdeck.evaluators`` hook.

Built-in evaluators register through the same entry-point group third parties use. A
plugin package declares in its ``pyproject.toml``::

    [project.entry-points."lmdeck.evaluators"]
    polite = "my_package.evals:register"

and ``register(registry)`` adds a class (built as ``cls(ctx, **options)``) or a plain
function of the sample::

    def register(registry: EvaluatorRegistry) -> None:
        registry.add_function("polite", lambda sample: "please" in sample.output.lower())
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from lmdeck.evaluation.base import Evaluator, EvaluatorContext
from lmdeck.evaluation.functions import FunctionEvaluator, SampleFunction
from lmdeck.plugins import call_hooks
from lmdeck.protocol.evaluation import EvaluatorError, EvaluatorSpec

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lmdeck.evaluators"


#: Builds an evaluator as ``factory(ctx, **options)``; an evaluator class is its own factory.
EvaluatorFactory = Callable[..., Evaluator]


@dataclass(frozen=True)
class EvaluatorInfo:
    name: str
    description: str
    options: dict[str, str]


def _describe(factory: Callable[..., Any]) -> EvaluatorInfo:
    doc = inspect.getdoc(factory) or ""
    params = {}
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        for name, param in signature.parameters.items():
            if name in ("self", "ctx") or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            default = "required" if param.default is param.empty else f"default {param.default!r}"
            params[name] = default
    return EvaluatorInfo(name="", description=doc.split("\n\n")[0].replace("\n", " "), options=params)


class EvaluatorRegistry:
    """Evaluator factories by name.

    >>> registry = EvaluatorRegistry()
    >>> registry.add_function("short", lambda sample: len(sample.output) < 80)
    >>> registry.create(EvaluatorSpec.parse("short"), EvaluatorContext()).name
    'short'
    """

    def __init__(self) -> None:
        self._factories: dict[str, EvaluatorFactory] = {}
        self._info: dict[str, EvaluatorInfo] = {}
        self.unavailable: dict[str, str] = {}

    def add(self, name: str, factory: EvaluatorFactory, description: str | None = None) -> None:
        info = _describe(factory)
        self._factories[name] = factory
        self._info[name] = EvaluatorInfo(name, description or info.description, info.options)

    def add_function(self, name: str, fn: SampleFunction, *, requires_reference: bool = False) -> None:
        """Register a plain function of the sample returning a bool, a number in [0, 1] or a Score."""

        def factory(ctx: EvaluatorContext, **options: Any) -> Evaluator:
            if options:
                raise EvaluatorError(f"evaluator {name!r} takes no options, got {', '.join(sorted(options))}")
            return FunctionEvaluator(name, fn, requires_reference=requires_reference)

        self._factories[name] = factory
        doc = (inspect.getdoc(fn) or "user-defined evaluator").split("\n\n")[0].replace("\n", " ")
        self._info[name] = EvaluatorInfo(name, doc, {})

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def names(self) -> list[str]:
        return sorted(self._factories)

    def info(self) -> list[EvaluatorInfo]:
        return [self._info[n] for n in self.names()]

    def create(self, spec: EvaluatorSpec, ctx: EvaluatorContext) -> Evaluator:
        try:
            factory = self._factories[spec.name]
        except KeyError:
            why = self.unavailable.get(spec.name)
            if why:
                raise EvaluatorError(f"evaluator {spec.name!r} could not be loaded: {why}") from None
            raise EvaluatorError(
                f"unknown evaluator {spec.name!r} (known: {', '.join(self.names()) or 'none'}); "
                "install the plugin that provides it"
            ) from None
        try:
            evaluator = factory(ctx, **spec.options)
        except TypeError as exc:
            options = self._info[spec.name].options
            accepted = ", ".join(f"{k} ({v})" for k, v in options.items()) or "none"
            raise EvaluatorError(f"evaluator {spec.name!r}: {exc}; its options are: {accepted}") from None
        evaluator.name = spec.key
        return evaluator

    def create_all(self, specs: Iterable[EvaluatorSpec], ctx: EvaluatorContext) -> list[Evaluator]:
        evaluators = [self.create(spec, ctx) for spec in specs]
        keys = [e.name for e in evaluators]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise EvaluatorError(
                f"evaluator {duplicates[0]!r} is given twice: name each one, e.g. 'strict=regex:pattern=...'"
            )
        return evaluators


def load_evaluators(names: Iterable[str] | None = None) -> EvaluatorRegistry:
    """Call every registered ``lmdeck.evaluators`` hook (or only those named)."""
    return call_hooks(
        entry_points(group=ENTRY_POINT_GROUP),
        EvaluatorRegistry(),
        remedy=lambda name: "install the package that provides it",
        kind="evaluator",
        log=log,
        names=names,
    )
