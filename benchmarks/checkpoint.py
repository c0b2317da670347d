"""What checkpoints cost: runs of agent steps with an in-process model, no HTTP.

The model answers at once, so the run is nothing but flowgraph's own work: the
harshest setting for a store. Each cycle is two steps: an agent visit in which the
model calls a tool and then answers, and a tool step.

- A 200-cycle run with a growing conversation, committed to SQLite: the median
  cost per cycle (against the same run with no store), and the file's size after
  50, 100, 150 and 200 cycles, which should grow in proportion (bytes per cycle flat).
- A 1,000-step run (500 cycles), with and without a SQLite store, run in pairs
  back to back (in alternating order): the median of the pairs' ratios is the
  store's overhead. This machine is shared and noisy; pairs cancel most of it.
- The same with a tool that takes the run context: its calls are committed, and
  waited for, before they run (so that ``ctx.idempotency_key`` holds after a crash).
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
from flowgraph._checkpoint import close_stores, open_store

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


def keyed_note(text: str, ctx: fg.RunContext[Any]) -> str:
    """Note something down, keyed for exactly-once effects."""
    return f"noted: {text} ({ctx.idempotency_key})"


STAMPS: list[float] = []  # kept out of the context, which is committed at every step


async def _stamp(ctx: fg.RunContext[Any]) -> None:
    STAMPS.append(time.perf_counter())
    ctx.context["ticks"] += 1


def build(steps: int, tool_calls: bool, keyed: bool = False) -> fg.Flow:
    """A flow of ``steps`` cycles: an agent (calling a tool, if ``tool_calls``), then a
    tool step. ``keyed``: the agent's tool takes the run context."""
    tool = fg.Tool(keyed_note if keyed else note, name="note")
    agent = fg.Agent("worker", "Work.", tools=[tool] if tool_calls else [])
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


def _paired(folder: str, name: str, cycles: int, pairs: int, keyed: bool) -> dict[str, float]:
    """Runs with no store and with SQLite, back to back in alternating order."""
    none: list[float] = []
    sqlite: list[float] = []
    for pair in range(pairs):
        path = os.path.join(folder, f"{name}-{pair}.db")
        open_store(path)  # opened once per process, as a program would: not timed
        order = [None, path] if pair % 2 == 0 else [path, None]
        for store in order:
            flow = build(cycles, tool_calls=True, keyed=keyed)
            seconds, _ = asyncio.run(_timed(flow, store))
            (none if store is None else sqlite).append(seconds)
    ratios = [with_store / alone for with_store, alone in zip(sqlite, none, strict=True)]
    return {
        "none_s": statistics.median(none),
        "sqlite_s": statistics.median(sqlite),
        "overhead": statistics.median(ratios) - 1,
    }


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
        pairs = 4 * repeats + 1  # ratios are noisy on a shared machine: many short pairs
        figures["long"] = _paired(folder, "long", 500, pairs, keyed=False)
        figures["keyed"] = _paired(folder, "keyed", 500, pairs, keyed=True)
    return figures


def report(figures: dict[str, Any]) -> str:
    sizes = figures["sizes"]
    growth = ", ".join(f"{steps}: {size / 1024:.0f} KiB" for steps, size in sizes.items())
    per_step = ", ".join(f"{size / steps:.0f}" for steps, size in sizes.items())
    long, keyed = figures["long"], figures["keyed"]
    return (
        f"checkpoints (cycles of an agent calling a tool and a tool step, in-process model): "
        f"median per cycle {figures['step_none_us']:.0f} us with no store, "
        f"{figures['step_sqlite_us']:.0f} us with SQLite; file size by cycles {growth} "
        f"(bytes per cycle {per_step}: flat is linear); a 1,000-step run "
        f"{long['none_s']:.2f} s with no store, {long['sqlite_s']:.2f} s with SQLite -> "
        f"overhead {long['overhead']:.1%} (target < 20%); with a tool taking the run "
        f"context (its calls committed and waited for before they run) "
        f"{keyed['sqlite_s']:.2f} s -> overhead {keyed['overhead']:.1%}"
    )


if __name__ == "__main__":
    print(report(measure()))
