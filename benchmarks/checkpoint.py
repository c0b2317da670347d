"""What checkpoints cost: runs of agent steps with an in-process model, no HTTP.

- A 200-step run with a growing conversation, committed to SQLite: the median
  cost per step (against the same run with no store), and the file's size after
  50, 100, 150 and 200 steps, which should grow in proportion (bytes per step flat).
- A 1,000-step run, with and without a SQLite store: the store's share of the
  run's time. Each step is one agent visit that calls a tool (committed, durably,
  before the tool runs) and then answers.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import statistics
import tempfile
import time
from typing import Any

import flowgraph as fg
from flowgraph._checkpoint import close_stores

ANSWER = "A steady answer of some length, so that the conversation grows. " * 3


class InProcess:
    """A model that answers at once: a tool call when the agent's turn starts, else text."""

    name = "in-process"

    def __init__(self, tool_calls: bool) -> None:
        self.tool_calls = tool_calls
        self.calls = itertools.count()

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> fg.Completion:
        usage = fg.Usage(requests=1, prompt_tokens=10, completion_tokens=10)
        if self.tool_calls and messages[-1]["role"] != "tool":
            call = {
                "id": f"call_{next(self.calls)}",
                "type": "function",
                "function": {"name": "note", "arguments": '{"text": "seen"}'},
            }
            return fg.Completion(
                {"role": "assistant", "content": None, "tool_calls": [call]}, usage
            )
        return fg.Completion({"role": "assistant", "content": ANSWER}, usage)


def note(text: str) -> str:
    """Note something down."""
    return f"noted: {text}"


STAMPS: list[float] = []  # kept out of the context, which is committed at every step


async def _stamp(ctx: fg.RunContext[Any]) -> None:
    STAMPS.append(time.perf_counter())
    ctx.context["ticks"] += 1


def build(steps: int, tool_calls: bool) -> fg.Flow:
    agent = fg.Agent("worker", "Work.", tools=[note] if tool_calls else [])
    tick = fg.ToolStep("tick", _stamp)
    flow = fg.Flow("loop", model=InProcess(tool_calls), max_steps=2 * steps + 2)
    flow.edge(fg.START, agent)
    flow.edge(agent, tick)
    flow.edge(tick, fg.END, when=lambda ctx: ctx.context["ticks"] >= steps)
    flow.edge(tick, agent)
    return flow


async def _timed(flow: fg.Flow, store: str | None) -> tuple[float, list[float]]:
    STAMPS.clear()
    started = time.perf_counter()
    await flow.arun("go", context={"ticks": 0}, store=store)
    await close_stores()
    seconds = time.perf_counter() - started
    return seconds, [b - a for a, b in itertools.pairwise(STAMPS)]


def _size(path: str) -> int:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        count = db.execute("PRAGMA page_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    return int(count * size)


def measure(repeats: int = 3) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        per_step: dict[str, list[float]] = {"none": [], "sqlite": []}
        for repeat in range(repeats):
            path = os.path.join(folder, f"growing-{repeat}.db")
            for kind, store in (("none", None), ("sqlite", path)):
                _, times = asyncio.run(_timed(build(200, tool_calls=True), store))
                per_step[kind].extend(times)
        figures["step_none_us"] = statistics.median(per_step["none"]) * 1e6
        figures["step_sqlite_us"] = statistics.median(per_step["sqlite"]) * 1e6
        sizes: dict[int, int] = {}
        for steps in (50, 100, 150, 200):
            path = os.path.join(folder, f"size-{steps}.db")
            asyncio.run(_timed(build(steps, tool_calls=True), path))
            sizes[steps] = _size(path)
        figures["sizes"] = sizes
        totals: dict[str, list[float]] = {"none": [], "sqlite": []}
        for repeat in range(repeats):
            path = os.path.join(folder, f"long-{repeat}.db")
            for kind, store in (("none", None), ("sqlite", path)):
                seconds, _ = asyncio.run(_timed(build(1000, tool_calls=True), store))
                totals[kind].append(seconds)
        figures["long_none_s"] = statistics.median(totals["none"])
        figures["long_sqlite_s"] = statistics.median(totals["sqlite"])
        figures["overhead"] = figures["long_sqlite_s"] / figures["long_none_s"] - 1
    return figures


def report(figures: dict[str, Any]) -> str:
    sizes = figures["sizes"]
    growth = ", ".join(f"{steps}: {size / 1024:.0f} KiB" for steps, size in sizes.items())
    per_step = ", ".join(f"{size / steps:.0f}" for steps, size in sizes.items())
    return (
        f"checkpoints (agent steps with a tool call, in-process model): median per step "
        f"{figures['step_none_us']:.0f} us with no store, {figures['step_sqlite_us']:.0f} us "
        f"with SQLite (+{figures['step_sqlite_us'] - figures['step_none_us']:.0f} us); file "
        f"size by steps {growth} (bytes per step {per_step}: flat is linear); a 1,000-step "
        f"run {figures['long_none_s']:.2f} s with no store, {figures['long_sqlite_s']:.2f} s "
        f"with SQLite -> overhead {figures['overhead']:.1%} (target < 20%)"
    )


if __name__ == "__main__":
    print(report(measure()))
