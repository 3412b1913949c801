"""What bounded rendering adds to a prompt render: the in-process render (the baseline) against
the gateway's renderer, for a plain template (rendered in process) and one with logic (rendered
in a worker process).

    python bench/render_latency.py              # 2000 renders of each
    python bench/render_latency.py --renders 200

Prints the median and 99th percentile of each and the added median latency; the worker's start
is not counted (it happens once, at the first render with logic).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from lmdeck.protocol.registry import PromptVersionSpec
from lmdeck.protocol.templates import PromptTemplate
from lmdeck.registry.rendering import TemplateRenderer

PLAIN = PromptTemplate(
    PromptVersionSpec(
        messages=[
            {"role": "system", "content": "You answer for {{ company }}."},
            {"role": "user", "content": "{{ question }}"},
        ],
        variables={"company": "string", "question": "string"},
    )
)
LOGIC = PromptTemplate(
    PromptVersionSpec(
        text="Answer {{ question }}{% if company %} for {{ company|upper }}{% endif %}.",
        variables={"company": "string", "question": "string"},
    )
)
VARIABLES = {"company": "Acme", "question": "Where is my parcel?"}


async def timed(renders: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(renders):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def line(name: str, samples: list[float], baseline: list[float]) -> str:
    p50, base = statistics.median(samples), statistics.median(baseline)
    p99 = statistics.quantiles(samples, n=100)[98]
    return f"{name:34} p50 {p50:8.1f} us  p99 {p99:8.1f} us  added p50 {p50 - base:+8.1f} us ({p50 / base:.1f}x)"


async def main(renders: int) -> None:
    renderer = TemplateRenderer(workers=2)
    try:
        await renderer.render(LOGIC, VARIABLES, key="warm-up")  # starts the workers
        for template, label in ((PLAIN, "plain (in process)"), (LOGIC, "with logic (worker process)")):

            async def direct(template: PromptTemplate = template) -> object:
                return template.render(VARIABLES)

            async def bounded(template: PromptTemplate = template, key: str = label) -> object:
                return await renderer.render(template, VARIABLES, key=key)

            baseline = await timed(renders, direct)
            through = await timed(renders, bounded)
            print(line(f"{label}: direct render", baseline, baseline))
            print(line(f"{label}: TemplateRenderer", through, baseline))
    finally:
        await renderer.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renders", type=int, default=2000)
    asyncio.run(main(parser.parse_args().renders))
