"""The sandbox prompt templates render in: Jinja2's immutable sandbox, with limits on what one render may cost.

Jinja2's sandbox stops attribute tricks (``{{ ''.__class__ }}``) but not a template that is
merely expensive: ``{{ 'a' * 200000000 }}``, ``{{ lipsum(200000) }}``, nested loops over
``range``, ``{{ 10 ** 10 ** 8 }}`` or a macro that calls itself. :class:`BoundedSandbox`
checks each of these as it happens, so a breach stops the render at once with a
:class:`RenderLimitError` naming the limit, before the text is built::

    env = BoundedSandbox(RenderLimits(max_output_chars=1000))
    render_all({"text": env.from_string("{{ 'a' * n }}")}, {"n": 5000}, env.limits)
    # RenderLimitError: output_chars: str of 1 * 5000 would hold 5000 items; the limit is 1000

The output is counted while the template's ``generate()`` streams it. What no check here
can see (a long computation in pure Python) is bounded by the CPU time and memory of the
worker process renders run in (:mod:`lmdeck.registry.rendering`).
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

#: A width or precision in a %-format (``%0999d``, ``%.*f``).
_PERCENT_WIDTH = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d+|\*)?(?:\.(\d+|\*))?[a-zA-Z%]")
#: String methods whose integer argument is the length of what they return.
_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


@dataclass(frozen=True)
class RenderLimits:
    """What one render of a prompt may cost.

    >>> RenderLimits().max_output_chars
    1000000
    """

    #: Characters of rendered text, and of any string or list a template builds.
    max_output_chars: int = 1_000_000
    #: Items one ``range()`` call may produce.
    max_range: int = 10_000
    #: Items all ``range()`` calls of one render may produce together (nested loops multiply).
    max_loop_items: int = 100_000
    #: Paragraphs and words per paragraph of ``lipsum()``.
    max_lipsum_paragraphs: int = 20
    max_lipsum_words: int = 100
    #: Bits of an integer built by ``*`` or ``**``.
    max_int_bits: int = 4096
    #: Nested calls (macros calling macros, or themselves).
    max_call_depth: int = 50


class RenderLimitError(Exception):
    """A render went past one of its limits; ``limit`` names it (``output_chars``, ``range``, ...)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(f"{limit}: {message}")
        self.limit = limit


@dataclass
class _Budget:
    """What is left to the render in progress."""

    limits: RenderLimits
    loop_items: int
    chars: int
    depth: int = 0


_budget: ContextVar[_Budget | None] = ContextVar("lmdeck_render_budget", default=None)


def _limits() -> RenderLimits:
    budget = _budget.get()
    return budget.limits if budget is not None else RenderLimits()


def bounded_range(*args: int) -> range:
    """``range`` with at most ``max_range`` items per call and ``max_loop_items`` per render."""
    numbers = range(*args)
    budget = _budget.get()
    limits = budget.limits if budget is not None else RenderLimits()
    if len(numbers) > limits.max_range:
        raise RenderLimitError("range", f"range() of {len(numbers)} items; the limit is {limits.max_range}")
    if budget is not None:
        budget.loop_items -= len(numbers)
        if budget.loop_items < 0:
            raise RenderLimitError(
                "loop_items",
                f"the template's range() calls produced more than {limits.max_loop_items} items in all "
                "(nested loops multiply)",
            )
    return numbers


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """``lipsum`` with at most ``max_lipsum_paragraphs`` paragraphs of ``max_lipsum_words`` words."""
    limits = _limits()
    if not isinstance(n, int) or not 0 <= n <= limits.max_lipsum_paragraphs:
        raise RenderLimitError("lipsum", f"lipsum({n!r}): at most {limits.max_lipsum_paragraphs} paragraphs")
    if not isinstance(max, int) or not isinstance(min, int) or not 1 <= min <= max <= limits.max_lipsum_words:
        raise RenderLimitError(
            "lipsum", f"lipsum words per paragraph must be 1 <= min <= max <= {limits.max_lipsum_words}"
        )
    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_percent_format(text: str, args: Any) -> None:
    """Refuse a %-format whose width or precision alone would pass the output limit."""
    cap = _limits().max_output_chars
    starred = iter(args if isinstance(args, tuple) else (args,))
    for width, precision in _PERCENT_WIDTH.findall(text):
        for given in (width, precision):
            value = next(starred, 0) if given == "*" else int(given) if given else 0
            if _is_int(value) and value > cap:
                raise RenderLimitError("output_chars", f"a %-format width of {value}; the limit is {cap} characters")


def _bounded_width(name: str, position: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a filter whose argument at ``position`` (after the value) is the width of its result."""

    def wrap(filter_: Callable[..., Any]) -> Callable[..., Any]:
        def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
            width: Any = args[position] if len(args) > position else kwargs.get("width")
            cap = _limits().max_output_chars
            if _is_int(width) and width > cap:
                raise RenderLimitError("output_chars", f"|{name} to a width of {width}; the limit is {cap} characters")
            return filter_(value, *args, **kwargs)

        return bounded

    return wrap


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with the checks of :class:`RenderLimits` (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, limits: RenderLimits | None = None) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.limits = limits or RenderLimits()
        self.globals["range"] = bounded_range
        self.globals["lipsum"] = bounded_lipsum
        self.filters["center"] = _bounded_width("center", 0)(self.filters["center"])
        self.filters["indent"] = _bounded_width("indent", 0)(self.filters["indent"])
        plain_format = self.filters["format"]

        def bounded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(value, str):
                _check_percent_format(value, args)
            return plain_format(value, *args, **kwargs)

        self.filters["format"] = bounded_format

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        cap = _limits().max_output_chars
        bits = _limits().max_int_bits
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and _is_int(times) and len(seq) * times > cap:
                    raise RenderLimitError(
                        "output_chars",
                        f"{type(seq).__name__} of {len(seq)} * {times} would hold {len(seq) * times} items; "
                        f"the limit is {cap}",
                    )
            if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > bits:
                raise RenderLimitError("int_bits", f"a product of more than {bits} bits")
        elif operator == "**":
            if _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1 and left.bit_length() * right > bits:
                raise RenderLimitError("int_bits", f"{left} ** {right} has more than {bits} bits")
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, type(left)) and len(left) + len(right) > cap:
                raise RenderLimitError(
                    "output_chars", f"a concatenation of {len(left) + len(right)}; the limit is {cap}"
                )
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget.get()
        limits = budget.limits if budget is not None else __self.limits
        if (
            isinstance(__obj, types.BuiltinMethodType)
            and isinstance(getattr(__obj, "__self__", None), str)
            and __obj.__name__ in _WIDTH_METHODS
        ):
            width = args[0] if args else next(iter(kwargs.values()), 0)
            if _is_int(width) and width > limits.max_output_chars:
                raise RenderLimitError(
                    "output_chars", f"str.{__obj.__name__}({width}); the limit is {limits.max_output_chars}"
                )
        if budget is None:
            return super().call(__context, __obj, *args, **kwargs)
        budget.depth += 1
        try:
            if budget.depth > limits.max_call_depth:
                raise RenderLimitError(
                    "call_depth", f"calls nested more than {limits.max_call_depth} deep (a macro calling itself?)"
                )
            return super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1


class TemplateFailure(Exception):
    """A template failed for a reason of its own (an undefined name, a refused operation, a type error)."""


def _render_one(where: str, template: Template, variables: Mapping[str, Any], budget: _Budget) -> str:
    out: list[str] = []
    cap = budget.limits.max_output_chars
    try:
        for piece in template.generate(variables):
            budget.chars -= len(piece)
            if budget.chars < 0:
                raise RenderLimitError("output_chars", f"the rendered prompt is longer than {cap} characters")
            out.append(piece)
    except (RenderLimitError, TemplateFailure):
        raise
    except RecursionError:
        raise RenderLimitError("call_depth", f"{where}: the template recursed too deeply") from None
    except MemoryError:
        raise RenderLimitError("memory", f"{where}: the template needed more memory than a render may use") from None
    except SecurityError as exc:
        raise TemplateFailure(f"{where}: the template tried an operation the sandbox forbids: {exc}") from None
    except TemplateError as exc:
        raise TemplateFailure(f"{where}: the template failed: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateFailure(f"{where}: the template failed: {type(exc).__name__}: {exc}") from None
    return "".join(out)


def render_all(templates: Mapping[str, Template], variables: Mapping[str, Any], limits: RenderLimits) -> dict[str, str]:
    """Each of a prompt's templates rendered, sharing one budget; :class:`RenderLimitError` at the
    first breach of ``limits``, :class:`TemplateFailure` when a template fails on its own."""
    budget = _Budget(limits, limits.max_loop_items, limits.max_output_chars)
    token = _budget.set(budget)
    try:
        return {where: _render_one(where, template, variables, budget) for where, template in templates.items()}
    finally:
        _budget.reset(token)
