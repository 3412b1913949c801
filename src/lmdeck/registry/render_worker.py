"""What runs inside a rendering worker process (see :mod:`lmdeck.registry.rendering`).

The worker imports only the sandbox and the standard library, so it starts fast. At start
(:func:`start`) it caps its own address space; each render (:func:`render`) runs under a
CPU-time timer (``ITIMER_PROF``) that interrupts the template when its time is spent. The
answer is plain data, so nothing but strings crosses back to the gateway::

    ("ok", {"text": "Hello Ada"})
    ("limit", "cpu_seconds", "cpu_seconds: the template used more than 1.0 s of CPU time")
    ("failed", "", "text: the template failed: 'x' is undefined")
"""

from __future__ import annotations

import resource
import signal
from collections import OrderedDict
from collections.abc import Mapping
from types import FrameType
from typing import Any

from jinja2 import Template

from lmdeck.protocol.sandbox import BoundedSandbox, RenderLimitError, RenderLimits, TemplateFailure, render_all

Outcome = tuple[str, Any, Any]

#: Compiled templates by the key their sources were sent with (a version's digest), newest last.
_compiled: OrderedDict[str, dict[str, Template]] = OrderedDict()
_CACHED = 256
_state = {"rendering": False, "cpu_seconds": 0.0}


def _address_space() -> int:
    """Bytes of address space this process uses now (0 when the system does not say)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _out_of_time(signum: int, frame: FrameType | None) -> None:
    if _state["rendering"]:
        raise RenderLimitError("cpu_seconds", f"the template used more than {_state['cpu_seconds']} s of CPU time")


def start(memory_bytes: int) -> None:
    """Run once in each new worker: cap its memory at what it uses now plus ``memory_bytes``."""
    used = _address_space()
    if memory_bytes > 0 and used > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        wanted = used + memory_bytes
        if hard == resource.RLIM_INFINITY or wanted <= hard:
            resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    signal.signal(signal.SIGPROF, _out_of_time)


def _templates(key: str, sources: Mapping[str, str], limits: RenderLimits) -> dict[str, Template]:
    found = _compiled.get(key)
    if found is None:
        env = BoundedSandbox(limits)
        found = {where: env.from_string(source) for where, source in sources.items()}
        _compiled[key] = found
        while len(_compiled) > _CACHED:
            _compiled.popitem(last=False)
    else:
        _compiled.move_to_end(key)
    return found


def render(
    key: str, sources: Mapping[str, str], variables: Mapping[str, Any], limits: RenderLimits, cpu_seconds: float
) -> Outcome:
    """Render a prompt's templates (``sources`` by where they go) with bound ``variables``."""
    try:
        templates = _templates(key, sources, limits)
        _state["cpu_seconds"] = cpu_seconds
        _state["rendering"] = True
        signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
        try:
            return ("ok", render_all(templates, variables, limits), None)
        finally:
            _state["rendering"] = False
            signal.setitimer(signal.ITIMER_PROF, 0)
    except RenderLimitError as exc:
        return ("limit", exc.limit, str(exc))
    except TemplateFailure as exc:
        return ("failed", "", str(exc))
    except MemoryError:
        return ("limit", "memory", "memory: the template needed more memory than a render may use")
