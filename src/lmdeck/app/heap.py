"""Keep the garbage collector off what start-up allocated, for a serving process.

A gateway process imports and builds hundreds of thousands of long-lived objects (modules,
schemas, routes, the pipeline) before it serves its first request. Each request then allocates
short-lived ones (coroutine frames, dicts, records), which trigger the collector's young
generations often, and each older-generation pass walks every object start-up left behind.
:func:`freeze_startup_heap` collects once and moves the survivors to the permanent generation
(``gc.freeze``), so those passes only walk what serving created. Measured with
``bench/gateway_overhead.py``: CPU per request of one worker down by about a quarter
(docs/benchmarks.md).

Only for a process that builds one app and serves it until it exits (``lmdeck serve``): frozen
objects are never collected, so a process that builds many apps (a test run) must not call it.

    app = create_app(settings)
    freeze_startup_heap()
    uvicorn.run(app, ...)
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect, then exempt every surviving object from later collections; how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
