"""Rendering prompt templates off the event loop, in worker processes that can be stopped.

A template with logic (loops, calls, filters, operators) may cost what its author wants,
and a thread cannot be stopped, so the gateway renders it in a worker process
(``pebble.ProcessPool``) with three bounds on top of the sandbox's own limits:

- CPU time: each render has ``registry.render_cpu_seconds`` of CPU (``ITIMER_PROF`` in the
  worker); past it the render stops with a limit error and the worker lives on;
- wall time: a worker that does not answer within a few times that (stuck in C code) is
  killed and replaced;
- memory: each worker's address space is capped at what it needs plus ``registry.render_memory_mb``.

A plain template (text and variable lookups only, :attr:`PromptTemplate.inline`) cannot loop
or compute, so it renders in the gateway's process, as fast as before. Every breach is a
:class:`~lmdeck.protocol.templates.PromptLimitError` naming the limit; the API answers it
with a 400::

    renderer = TemplateRenderer(workers=2, cpu_seconds=1.0, memory_mb=256)
    text = await renderer.render(template, {"name": "Ada"}, key=version.digest)
    await renderer.aclose()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
from collections.abc import Mapping
from typing import Any

import anyio
import pebble

from lmdeck.protocol.sandbox import RenderLimits
from lmdeck.protocol.templates import PromptLimitError, PromptRenderError, PromptTemplate
from lmdeck.registry import render_worker

log = logging.getLogger(__name__)


class TemplateRenderer:
    """Renders prompt templates: plain ones in this process, the others in bounded worker processes."""

    def __init__(
        self,
        *,
        workers: int = 2,
        cpu_seconds: float = 1.0,
        memory_mb: int = 256,
        limits: RenderLimits | None = None,
        wall_seconds: float | None = None,
    ) -> None:
        self.workers = workers
        self.cpu_seconds = cpu_seconds
        self.memory_bytes = memory_mb * 1024 * 1024
        self.limits = limits or RenderLimits()
        #: A worker silent this long is stuck outside Python (where the CPU timer cannot reach): kill it.
        self.wall_seconds = wall_seconds if wall_seconds is not None else cpu_seconds * 4 + 2.0
        self._pool: pebble.ProcessPool | None = None

    def _workers(self) -> pebble.ProcessPool:
        if self._pool is None:
            methods = multiprocessing.get_all_start_methods()
            # Not fork: the gateway has threads, and a forked copy of a lock held by one of them never opens.
            context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            self._pool = pebble.ProcessPool(
                max_workers=self.workers,
                initializer=render_worker.start,
                initargs=(self.memory_bytes,),
                context=context,
            )
        return self._pool

    async def render(
        self, template: PromptTemplate, given: Mapping[str, Any], *, key: str, flags: Mapping[str, Any] | None = None
    ) -> str | list[dict[str, Any]]:
        """The text or chat messages; :class:`PromptRenderError` (or its :class:`PromptLimitError`).

        ``flags``: the request's feature flags, for a template that reads ``flags.NAME`` (a flag it reads
        that does not exist is a :class:`PromptRenderError` naming it); None outside a request, where
        ``given["flags"]`` gives their values.
        """
        variables = template.bind_with_flags(given, flags)
        if template.inline:
            return template.assemble(template.render_pieces(variables, self.limits))
        args = (key, template.sources, variables, self.limits, self.cpu_seconds)
        future = self._workers().schedule(render_worker.render, args=args, timeout=self.wall_seconds)
        try:
            status, detail, message = await asyncio.wrap_future(future)
        except (TimeoutError, concurrent.futures.TimeoutError):
            raise PromptLimitError(
                "wall_seconds",
                f"the template went past a render limit: wall_seconds: no answer in {self.wall_seconds:g} s; "
                "the worker rendering it was stopped",
            ) from None
        except pebble.ProcessExpired as exc:
            raise PromptLimitError(
                "memory", f"the template went past a render limit: memory: the worker rendering it died ({exc})"
            ) from None
        if status == "ok":
            return template.assemble(detail)
        if status == "limit":
            raise PromptLimitError(detail, f"the template went past a render limit: {message}")
        raise PromptRenderError(message)

    async def render_messages(
        self, template: PromptTemplate, given: Mapping[str, Any], *, key: str, flags: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """Chat messages: a text prompt becomes one user message."""
        return PromptTemplate.messages_of(await self.render(template, given, key=key, flags=flags))

    async def aclose(self) -> None:
        """Stop the workers (a render in progress is abandoned)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            await anyio.to_thread.run_sync(pool.join)
