"""Engine overhead per node transition: a 1,000-step chain of ToolSteps, no HTTP.

Reports the median time per step (a run's time over its steps, median of several
runs), for async step functions (run on the loop) and sync ones (a worker thread).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import flowgraph as fg

STEPS = 1000


async def _async_step(ctx: fg.RunContext[dict[str, int]]) -> None:
    ctx.context["n"] += 1


def _sync_step(ctx: fg.RunContext[dict[str, int]]) -> None:
    ctx.context["n"] += 1


def build_chain(fn: Any, steps: int = STEPS) -> fg.Flow:
    flow = fg.Flow("chain", max_steps=steps + 1)
    previous: fg.Node = fg.START
    for index in range(steps):
        node = fg.ToolStep(f"s{index}", fn)
        flow.edge(previous, node)
        previous = node
    flow.edge(previous, fg.END)
    flow.validate()
    return flow


async def _per_step(flow: fg.Flow, runs: int) -> float:
    samples = []
    for _ in range(runs):
        context = {"n": 0}
        started = time.perf_counter()
        result = await flow.arun("go", context=context)
        samples.append((time.perf_counter() - started) / STEPS)
        assert result.steps == STEPS and context["n"] == STEPS
    return statistics.median(samples)


def measure(runs: int = 9) -> dict[str, Any]:
    async_flow, sync_flow = build_chain(_async_step), build_chain(_sync_step)
    return {
        "async_us": asyncio.run(_per_step(async_flow, runs)) * 1e6,
        "sync_us": asyncio.run(_per_step(sync_flow, runs)) * 1e6,
    }


if __name__ == "__main__":
    figures = measure()
    print(
        f"per step, 1,000-step chain: async steps {figures['async_us']:.1f} us, "
        f"sync steps (worker thread) {figures['sync_us']:.1f} us"
    )
