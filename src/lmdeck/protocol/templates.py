"""Prompt templates: Jinja2 in a sandbox, with declared, typed variables.

A template is checked when its version is created (syntax, and every variable
it uses must be declared) and compiled once; rendering validates the
variables first, so a request learns exactly which ones are missing, extra or
of the wrong type::

    template = PromptTemplate(PromptVersionSpec(text="Hello {{ name }}", variables={"name": "string"}))
    template.render({"name": "Ada"})          # "Hello Ada"
    template.render({})                       # PromptRenderError: missing variable: name

The sandbox (:class:`lmdeck.protocol.sandbox.BoundedSandbox`, Jinja2's immutable
sandbox) refuses attribute tricks such as ``{{ ''.__class__.__mro__ }}`` and
mutation of arguments, and bounds what a render may cost (output size, ``range``,
``lipsum``, repetition, integer size, call depth): a breach is a
:class:`PromptLimitError` naming the limit. :meth:`PromptTemplate.render` renders in
this process; the gateway renders templates with logic in a worker process with a
CPU-time limit (:mod:`lmdeck.registry.rendering`), and only plain templates
(text and variable lookups, :attr:`PromptTemplate.inline`) in its own process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import Template, TemplateSyntaxError, meta, nodes

from lmdeck.protocol.registry import PromptVersionSpec, VariableSpec, VariableType
from lmdeck.protocol.sandbox import BoundedSandbox, RenderLimitError, RenderLimits, TemplateFailure, render_all

#: The most characters a rendered prompt may have.
MAX_RENDERED_CHARS = RenderLimits().max_output_chars
#: AST nodes of a plain template: text and variable lookups, nothing that loops, calls or computes.
_PLAIN_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Getattr, nodes.Getitem, nodes.Const)

_TYPE_CHECKS: dict[VariableType, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "any": lambda v: True,
}


class PromptRenderError(ValueError):
    """The variables do not fit the prompt, or the template failed; the message names what to fix."""

    def __init__(
        self,
        message: str,
        *,
        missing: list[str] | None = None,
        extra: list[str] | None = None,
        wrong: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.missing = missing or []
        self.extra = extra or []
        self.wrong = wrong or {}


class PromptLimitError(PromptRenderError):
    """A render went past one of the sandbox's limits; ``limit`` names it (``output_chars``, ``range``...)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class PromptTemplateError(ValueError):
    """A template cannot be accepted as a version (syntax, undeclared variables)."""


def _environment() -> BoundedSandbox:
    return BoundedSandbox()


def is_plain(source: str) -> bool:
    """Whether a template is only text and variable lookups (rendering it cannot loop, call or compute)."""
    tree = _environment().parse(source)
    return all(isinstance(node, _PLAIN_NODES) for node in tree.find_all(nodes.Node))


def rendered_error(exc: RenderLimitError | TemplateFailure) -> PromptRenderError:
    """The :class:`PromptRenderError` a failed render is reported as."""
    if isinstance(exc, RenderLimitError):
        return PromptLimitError(exc.limit, f"the template went past a render limit: {exc}")
    return PromptRenderError(str(exc))


def _texts(spec: PromptVersionSpec) -> Iterator[tuple[str, str]]:
    """(where, template source) for every template string in a version."""
    if spec.text is not None:
        yield "text", spec.text
    for i, message in enumerate(spec.messages or []):
        content = message.get("content")
        if isinstance(content, str):
            yield f"messages[{i}].content", content
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield f"messages[{i}].content[{j}].text", part["text"]


def check_messages(spec: PromptVersionSpec) -> None:
    for i, message in enumerate(spec.messages or []):
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise PromptTemplateError(f"messages[{i}].role must be system, developer, user, assistant or tool")
        if not isinstance(message.get("content"), str | list):
            raise PromptTemplateError(f"messages[{i}].content must be a string or a list of content parts")


def used_variables(spec: PromptVersionSpec) -> set[str]:
    """The names a version's templates use (whether declared or not)."""
    env = _environment()
    used: set[str] = set()
    for where, source in _texts(spec):
        try:
            used |= meta.find_undeclared_variables(env.parse(source))
        except TemplateSyntaxError as exc:
            raise PromptTemplateError(f"{where}: line {exc.lineno}: {exc.message}") from None
    return used


#: The variable a template reads the request's feature flags from (``{{ flags.support_tone }}``),
#: without declaring it; reading a flag that does not exist is a render error naming it.
FLAGS_VARIABLE = "flags"


def flag_reads(spec: PromptVersionSpec) -> frozenset[str] | None:
    """The flag names a version's templates read as ``flags.NAME`` or ``flags['NAME']``;
    None when they use ``flags`` otherwise (a loop over it, say), so every flag may be read."""
    env = _environment()
    names: set[str] = set()
    for _, source in _texts(spec):
        tree = env.parse(source)
        uses = sum(1 for n in tree.find_all(nodes.Name) if n.name == FLAGS_VARIABLE)
        reads = 0
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            if not (isinstance(node, nodes.Getattr | nodes.Getitem) and isinstance(node.node, nodes.Name)):
                continue
            if node.node.name != FLAGS_VARIABLE:
                continue
            if isinstance(node, nodes.Getattr):
                names.add(node.attr)
                reads += 1
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                names.add(node.arg.value)
                reads += 1
        if uses > reads:
            return None
    return frozenset(names)


class PromptTemplate:
    """One prompt version, compiled; :meth:`render` fills it in.

    A template may read the request's feature flags as ``flags.NAME`` without declaring
    ``flags`` (unless it declares a variable of that name): :meth:`flag_variables` picks the
    values it reads from the request's flags.
    """

    def __init__(self, spec: PromptVersionSpec) -> None:
        self.spec = spec
        check_messages(spec)
        used = used_variables(spec)
        env = _environment()
        self.sources: dict[str, str] = dict(_texts(spec))
        self._compiled: dict[str, Template] = {where: env.from_string(source) for where, source in self.sources.items()}
        #: Only text and variable lookups: cheap enough to render anywhere, without a worker.
        self.inline = all(is_plain(source) for source in self.sources.values())
        #: Whether the templates read ``flags``, and which (None: any of them).
        self.reads_flags = FLAGS_VARIABLE in used and FLAGS_VARIABLE not in spec.variables
        self.flag_names = flag_reads(spec) if self.reads_flags else frozenset()
        undeclared = sorted(used - set(spec.variables) - {FLAGS_VARIABLE})
        if undeclared:
            raise PromptTemplateError(
                f"the template uses {', '.join(undeclared)} but `variables` does not declare "
                f"{'it' if len(undeclared) == 1 else 'them'}: add {', '.join(undeclared)} to `variables`"
            )

    @property
    def variables(self) -> dict[str, VariableSpec]:
        return self.spec.variables

    def bind(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The variables to render with (defaults filled in), or :class:`PromptRenderError`."""
        declared = self.spec.variables
        missing = sorted(n for n, v in declared.items() if n not in given and v.required and v.default is None)
        extra = sorted(n for n in given if n not in declared)
        wrong = {
            n: f"expected {declared[n].type}, got {type(v).__name__}"
            for n, v in given.items()
            if n in declared and not _TYPE_CHECKS[declared[n].type](v)
        }
        if missing or extra or wrong:
            parts = []
            if missing:
                parts.append(f"missing variable{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
            if extra:
                parts.append(f"unknown variable{'s' if len(extra) > 1 else ''}: {', '.join(extra)}")
            for name, why in sorted(wrong.items()):
                parts.append(f"variable {name}: {why}")
            declared_list = ", ".join(f"{n} ({v.type})" for n, v in declared.items()) or "none"
            raise PromptRenderError(
                f"{'; '.join(parts)} (the prompt declares: {declared_list})", missing=missing, extra=extra, wrong=wrong
            )
        bound = {n: v.default for n, v in declared.items() if v.default is not None or not v.required}
        bound.update(given)
        return bound

    def bind_with_flags(self, given: Mapping[str, Any], flags: Mapping[str, Any] | None) -> dict[str, Any]:
        """:meth:`bind` plus the ``flags`` the templates read: from ``flags`` (a request's), or, outside a
        request (``flags`` None: a preview, the SDK), from ``given["flags"]``, a mapping of flag values."""
        if flags is None and self.reads_flags and FLAGS_VARIABLE in given:
            given = dict(given)
            supplied = given.pop(FLAGS_VARIABLE)
            if not isinstance(supplied, Mapping):
                raise PromptRenderError("variable flags: give the flags' values as an object, {name: value}")
            flags = supplied
        return {**self.bind(given), **self.flag_variables(flags)}

    def flag_variables(self, flags: Mapping[str, Any] | None) -> dict[str, Any]:
        """``{"flags": {name: value}}`` for the flags the templates read (empty when they read none)."""
        if not self.reads_flags:
            return {}
        if flags is None:
            raise PromptRenderError(
                "the template reads feature flags: give their values as the variable `flags` ({name: value}) "
                "to render it outside a request"
            )
        if self.flag_names is None:
            return {FLAGS_VARIABLE: dict(flags)}
        missing = sorted(name for name in self.flag_names if name not in flags)
        if missing:
            raise PromptRenderError(
                f"the template reads the flag{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
                f"which {'do' if len(missing) > 1 else 'does'} not exist: create "
                f"{'them' if len(missing) > 1 else 'it'} (`lmdeck flags set NAME VALUE`) or change the template"
            )
        return {FLAGS_VARIABLE: {name: flags[name] for name in sorted(self.flag_names)}}

    def render_pieces(self, variables: Mapping[str, Any], limits: RenderLimits | None = None) -> dict[str, str]:
        """Each template of the version rendered in this process (``variables`` already bound)."""
        try:
            return render_all(self._compiled, variables, limits or RenderLimits())
        except (RenderLimitError, TemplateFailure) as exc:
            raise rendered_error(exc) from None

    def assemble(self, pieces: Mapping[str, str]) -> str | list[dict[str, Any]]:
        """The text, or the chat messages, from the rendered ``pieces`` (by where they go)."""
        if self.spec.text is not None:
            return pieces["text"]
        messages: list[dict[str, Any]] = []
        for i, message in enumerate(self.spec.messages or []):
            content = message["content"]
            if isinstance(content, str):
                rendered: Any = pieces[f"messages[{i}].content"]
            else:
                rendered = []
                for j, part in enumerate(content):
                    where = f"messages[{i}].content[{j}].text"
                    rendered.append({**part, "text": pieces[where]} if where in pieces else part)
            messages.append({**message, "content": rendered})
        return messages

    def render(self, given: Mapping[str, Any]) -> str | list[dict[str, Any]]:
        """The text, or the chat messages, with ``given`` filled in (rendered in this process); a template
        reading feature flags takes their values as ``given["flags"]``."""
        return self.assemble(self.render_pieces(self.bind_with_flags(given, None)))

    @staticmethod
    def messages_of(rendered: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chat messages: a text prompt becomes one user message."""
        return [{"role": "user", "content": rendered}] if isinstance(rendered, str) else rendered

    def render_messages(self, given: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Chat messages: a text prompt becomes one user message."""
        return self.messages_of(self.render(given))
