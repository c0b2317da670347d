"""Engine overhead per node transition: a 1,000-step chain of ToolSteps, no HTTP.

Each step is timed on its own: the step function stamps ``perf_counter`` as it
runs, so the time from one step's call to the next is one step (the transition,
the hook points, the step record, and the call). Reports the median and the mean
over every step of several runs, for async step functions (run on the loop) and
sync ones (a worker thread).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from typing import Any

import flowgraph as fg

STEPS = 1000
Stamps = dict[str, Any]  # the run's context: "stamps", the step calls' perf_counter


async def _async_step(ctx: fg.RunContext[Stamps]) -> None:
    ctx.context["stamps"].append(time.perf_counter())


def _sync_step(ctx: fg.RunContext[Stamps]) -> None:
    ctx.context["stamps"].append(time.perf_counter())


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


async def _step_times(flow: fg.Flow, runs: int) -> list[float]:
    """Seconds per step, every step of every run (the first of each run has no
    earlier stamp, so a run of N steps gives N - 1)."""
    times: list[float] = []
    for _ in range(runs):
        result = await flow.arun("go", context={"stamps": []})
        stamps = result.context["stamps"]
        assert result.steps == STEPS and len(stamps) == STEPS
        times.extend(later - earlier for earlier, later in itertools.pairwise(stamps))
    return times


def measure(runs: int = 9) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for kind, fn in (("async", _async_step), ("sync", _sync_step)):
        times = asyncio.run(_step_times(build_chain(fn), runs))
        figures[f"{kind}_us"] = statistics.median(times) * 1e6
        figures[f"{kind}_mean_us"] = statistics.fmean(times) * 1e6
    return figures


if __name__ == "__main__":
    figures = measure()
    print(
        f"per step, 1,000-step chain: async steps {figures['async_us']:.1f} us median, "
        f"{figures['async_mean_us']:.1f} us mean; sync steps (worker thread) "
        f"{figures['sync_us']:.1f} us median, {figures['sync_mean_us']:.1f} us mean"
    )
