"""``client.prompts``: fetch and render registered prompts, with a stale-while-revalidate cache.

    prompt = client.prompts.get("support-reply")                 # label production, cached 60 s
    messages = prompt.messages(customer="Ada", question="...")   # rendered here, in the same sandbox
    prompt = client.prompts.get("support-reply", label="staging", cache_ttl=5,
                                fallback="Answer the customer {{ customer }}.")
    client.prompts.create("support-reply", messages=[...], variables={"customer": "string"},
                          commit_message="shorter greeting")
    client.prompts.label("support-reply", "production", 3, reason="eval passed")

The cache: a fresh entry is returned as is; a stale one is returned at once
while a background fetch replaces it, so a label move is seen within the TTL
plus one round trip and a slow or unreachable server never blocks a caller who
has a copy. Without a copy, a failed fetch returns ``fallback`` when one is
given (``prompt.is_fallback`` is then true) and raises otherwise. A prompt
fetched by version never changes, so it never goes stale.

A failed fetch is told apart by what it means. "Gone" (a 404: the label was
removed or the prompt deleted; likewise any other 4xx, such as a key that may
no longer read it) ends the cached copy at once: the next ``get`` fetches again
and raises, or returns ``fallback``. "Unreachable" (a network error, a timeout,
a 5xx, or a 429 asking to back off) keeps serving the stale copy; each such
failure is logged as a warning and counted in ``client.prompts.stats``::

    client.prompts.stats.stale_served     # copies served because the server could not answer
    client.prompts.stats.refresh_errors   # fetches that failed that way
    client.prompts.stats.gone             # cached copies ended by a 404 (or another 4xx)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from lmdeck.protocol.registry import PromptVersionSpec
from lmdeck.protocol.templates import PromptTemplate, used_variables
from lmdeck.sdk.errors import LMDeckError
from lmdeck.sdk.namespace import Caller
from lmdeck.sdk.pointers import PointerNamespace

log = logging.getLogger(__name__)

DEFAULT_LABEL = "production"
DEFAULT_TTL = 60.0
CacheKey = tuple[str, str | None, int | None]


@dataclass(frozen=True)
class Prompt:
    """One prompt version, ready to render."""

    name: str
    version: int | None
    spec: PromptVersionSpec
    label: str | None = None
    digest: str | None = None
    is_fallback: bool = False
    _template: list[PromptTemplate] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Prompt:
        fields = {k: data.get(k) for k in PromptVersionSpec.model_fields if k in data}
        return cls(
            name=data["name"],
            version=data.get("version"),
            spec=PromptVersionSpec.model_validate({**fields, "version": data.get("version")}),
            label=data.get("label"),
            digest=data.get("digest"),
        )

    @property
    def template(self) -> PromptTemplate:
        if not self._template:
            self._template.append(PromptTemplate(self.spec))
        return self._template[0]

    @property
    def parameters(self) -> dict[str, Any]:
        return self.spec.parameters

    @property
    def route(self) -> str | None:
        return self.spec.route

    def render(self, variables: dict[str, Any] | None = None, **more: Any) -> str | list[dict[str, Any]]:
        """The text or chat messages; raises :class:`~lmdeck.protocol.templates.PromptRenderError`."""
        return self.template.render({**(variables or {}), **more})

    def messages(self, variables: dict[str, Any] | None = None, **more: Any) -> list[dict[str, Any]]:
        """Chat messages (a text prompt becomes one user message)."""
        return self.template.render_messages({**(variables or {}), **more})


def fallback_prompt(name: str, fallback: Prompt | str | list[dict[str, Any]]) -> Prompt:
    """A prompt made from a local text or message list; every variable it uses is required, of any type."""
    if isinstance(fallback, Prompt):
        return Prompt(fallback.name, fallback.version, fallback.spec, fallback.label, fallback.digest, True)
    draft = PromptVersionSpec(text=fallback) if isinstance(fallback, str) else PromptVersionSpec(messages=fallback)
    variables = {n: {"type": "any"} for n in sorted(used_variables(draft))}
    spec = PromptVersionSpec.model_validate({**draft.model_dump(exclude={"variables"}), "variables": variables})
    return Prompt(name=name, version=None, spec=spec, is_fallback=True)


@dataclass
class PromptCacheStats:
    """Counters of the client-side prompt cache, since the client was made (``client.prompts.stats``)."""

    #: ``get`` calls answered from a fresh copy, without a call.
    hits: int = 0
    #: fetches that succeeded (first fetches and refreshes).
    fetches: int = 0
    #: stale copies served because the server was unreachable, failing (5xx) or asking to back off (429).
    stale_served: int = 0
    #: fetches that failed that way (the copy, if any, was kept).
    refresh_errors: int = 0
    #: cached copies ended because the server said the prompt or label is gone (404, or another 4xx).
    gone: int = 0


def unreachable(exc: LMDeckError) -> bool:
    """Whether a failed fetch says nothing about the prompt: no answer, a 5xx, or 429 (back off)."""
    return exc.status is None or exc.status >= 500 or exc.status == 429


@dataclass
class _Entry:
    prompt: Prompt
    fetched_at: float
    #: Why the last refresh could not reach the server (None when it did).
    failing: str | None = None


class Prompts(PointerNamespace):
    """The prompt registry (``/api/registry/prompts``) and the client-side prompt cache.

    The label calls are :class:`~lmdeck.sdk.pointers.PointerNamespace`'s, in the words of prompts.
    """

    name = "prompts"
    collection = "prompts"
    pointer_word = "label"
    pointer_plural = "labels"

    def __init__(self, client: Caller) -> None:
        super().__init__(client)
        self.cache_ttl = DEFAULT_TTL
        self.clock: Callable[[], float] = time.monotonic
        self._cache: dict[CacheKey, _Entry] = {}
        self._refreshing: set[CacheKey] = set()
        self._lock = threading.Lock()
        self.stats = PromptCacheStats()

    # -- reading, cached -----------------------------------------------------------------------

    def _fetch(self, key: CacheKey) -> Prompt:
        name, label, version = key
        data = self.client.get(self._path(name, "/resolve"), params={"label": label, "version": version})
        prompt = Prompt.from_api(data)
        with self._lock:
            self._cache[key] = _Entry(prompt, self.clock())
            self.stats.fetches += 1
        return prompt

    def _failed(self, key: CacheKey, exc: LMDeckError) -> _Entry | None:
        """Record a failed fetch; the copy still to serve (None when there is none, or it is gone)."""
        where = f"{key[0]}@{key[1]}" if key[2] is None else f"{key[0]} v{key[2]}"
        with self._lock:
            entry = self._cache.get(key)
            if unreachable(exc):
                self.stats.refresh_errors += 1
                if entry is not None:
                    entry.failing = str(exc)
            elif entry is not None:
                del self._cache[key]
                self.stats.gone += 1
        if not unreachable(exc):
            if entry is not None:
                log.warning("dropped the cached prompt %s: the server says it is gone: %s", where, exc)
            return None
        if entry is not None:
            log.warning("serving the cached prompt %s: the server could not be reached: %s", where, exc)
        return entry

    def _stale(self, entry: _Entry) -> Prompt:
        if entry.failing is not None:
            with self._lock:
                self.stats.stale_served += 1
        return entry.prompt

    def _revalidate(self, key: CacheKey) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)

        def run() -> None:
            try:
                self._fetch(key)
            except LMDeckError as exc:
                self._failed(key, exc)
            except Exception as exc:  # an answer that cannot be read says nothing about the prompt: keep the copy
                log.warning("keeping the cached prompt %s: refreshing it failed: %s", key[0], exc)
            finally:
                with self._lock:
                    self._refreshing.discard(key)

        threading.Thread(target=run, name=f"lmdeck-prompt-{key[0]}", daemon=True).start()

    def get(
        self,
        name: str,
        *,
        label: str | None = None,
        version: int | None = None,
        cache_ttl: float | None = None,
        fallback: Prompt | str | list[dict[str, Any]] | None = None,
    ) -> Prompt:
        """The prompt ``label`` (default production) or ``version`` names, from the cache when it can."""
        key: CacheKey = (name, None if version is not None else (label or DEFAULT_LABEL), version)
        ttl = self.cache_ttl if cache_ttl is None else cache_ttl
        with self._lock:
            entry = self._cache.get(key)
        if entry is not None and ttl > 0:
            if version is not None or self.clock() - entry.fetched_at < ttl:
                with self._lock:
                    self.stats.hits += 1
                return entry.prompt
            self._revalidate(key)
            return self._stale(entry)
        try:
            return self._fetch(key)
        except LMDeckError as exc:
            kept = self._failed(key, exc)
            if kept is not None:
                return self._stale(kept)
            if fallback is not None:
                return fallback_prompt(name, fallback)
            raise

    def render(
        self, name: str, variables: dict[str, Any] | None = None, *, label: str | None = None, **options: Any
    ) -> str | list[dict[str, Any]]:
        """:meth:`get` then render locally."""
        return self.get(name, label=label, **options).render(variables or {})

    def invalidate(self, name: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._cache if name is None or k[0] == name]:
                del self._cache[key]

    # -- registry calls ------------------------------------------------------------------------

    def show(self, name: str) -> dict[str, Any]:
        """The prompt with its versions and labels."""
        return self._entry(name)

    def version(self, name: str, version: int) -> Prompt:
        return Prompt.from_api(self.client.get(self._path(name, f"/versions/{version}")))

    def create(self, name: str, spec: PromptVersionSpec | None = None, **fields: Any) -> Prompt:
        """Add a version: pass a :class:`PromptVersionSpec` or its fields (``text=`` or ``messages=``, ...)."""
        body = (spec or PromptVersionSpec.model_validate(fields)).model_dump(mode="json", exclude_none=True)
        return Prompt.from_api(self.client.post(self._path(name, "/versions"), json=body))

    def label(
        self, name: str, label: str, version: int, *, reason: str | None = None, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Point ``name@label`` at ``version``; with ``expected_version``, only if it still points there (else
        :class:`~lmdeck.sdk.errors.LMDeckError` 409 ``version_conflict``)."""
        return self.move(name, label, version, reason=reason, expected_version=expected_version)

    def unlabel(
        self, name: str, label: str, *, reason: str | None = None, expected_version: int | None = None
    ) -> dict[str, Any]:
        return self.remove(name, label, reason=reason, expected_version=expected_version)

    def rollback(
        self, name: str, label: str, *, reason: str | None = None, expected_version: int | None = None
    ) -> dict[str, Any]:
        return self.move_back(name, label, reason=reason, expected_version=expected_version)

    def history(self, name: str, label: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self.moves(name, label, limit)

    def diff(self, name: str, from_version: int, to_version: int) -> dict[str, Any]:
        diff: dict[str, Any] = self.client.get(
            self._path(name, "/diff"), params={"from": from_version, "to": to_version}
        )
        return diff

    # -- optimization ---------------------------------------------------------------------------

    def optimize(
        self, name: str, *, dataset: str, evaluators: list[str | dict[str, Any]], **options: Any
    ) -> dict[str, Any]:
        """Start a prompt optimization (``label``/``version``, ``route``, ``instructions``, ``candidates``,
        ``demos``, ``seed``, ``holdout``, ``max_eval_rows``, ``concurrency``, ``max_tokens`` as the API takes
        them) and return its record at once (status ``running``); see :meth:`wait_optimization`."""
        body = {"dataset": dataset, "evaluators": evaluators, **{k: v for k, v in options.items() if v is not None}}
        started: dict[str, Any] = self.client.post(self._path(name, "/optimize"), json=body)
        return started

    def optimization(self, name: str, optimization_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.client.get(self._path(name, f"/optimizations/{quote(optimization_id, safe='')}"))
        return found

    def optimizations(self, name: str, *, limit: int = 50) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.client.get(self._path(name, "/optimizations"), params={"limit": limit})[
            "data"
        ]
        return data

    def wait_optimization(
        self,
        name: str,
        optimization_id: str,
        *,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll: float = 0.5,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Poll until the optimization is no longer running; ``on_progress(progress)`` after each poll
        (``{"done", "total", "stage", "best"}``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.optimization(name, optimization_id)
            if on_progress is not None:
                on_progress(record["progress"])
            if record.get("status") != "running":
                return record
            if deadline is not None and time.monotonic() > deadline:
                raise LMDeckError(f"prompt optimization {optimization_id} still running after {timeout}s")
            time.sleep(poll)


NAMESPACE = Prompts
