"""What checkpoints cost: runs of agent steps with an in-process model, no HTTP.

The model answers at once, so the run is nothing but flowgraph's own work: the
harshest setting for a store. Each cycle is two steps: an agent visit in which the
model calls a tool and then answers, and a tool step.

- A 200-cycle run with a growing conversation, committed to SQLite: the median
  cost per cycle (against the same run with no store), and the file's size after
  50, 100, 150 and 200 cycles, which should grow in proportion (bytes per cycle flat).
- A 1,000-step run (500 cycles), with and without a SQLite store, run in 201 pairs
  back to back (in alternating order): the median of the pairs' ratios is the
  store's overhead. This machine is shared and noisy; pairs cancel most of it. Of
  it, the run's end: its last commits written, which ``arun`` waits for.
- The same with a tool that takes the run context: its calls are committed, and
  waited for, before they run (so that ``ctx.idempotency_key`` holds after a crash).
- ``--instructions``: the same 1,000-step run's CPU instructions per cycle, with and
  without SQLite, counted by valgrind (callgrind), in the event loop's thread (the
  run's own time) and in all threads (with the writer's, which runs on another core
  when there is one). Unlike times, the counts repeat to about a point whatever else
  the machine does (a visit that runs long under valgrind can add a commit); they
  leave out what threads cost each other and the caches, so they set a floor under
  the timed overhead.

    python -m benchmarks.checkpoint [--instructions]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import flowgraph as fg
import flowgraph._engine.run
from flowgraph._store.open import open_store

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
    """The run's seconds, and the seconds between its tool steps, then from the last
    tool step to the run's return (with a store: its end committed and written).

    The garbage the benchmark left is collected first: else a full collection of it
    (60-80 ms here) lands in some runs and not others, by the collector's counts."""
    STAMPS.clear()
    gc.collect()
    started = time.perf_counter()
    await flow.arun("go", context={"ticks": 0}, store=store)  # returns once written
    ended = time.perf_counter()
    checkpointer = open_store(store)
    if checkpointer is not None:  # a run's end is written before arun returns: to be sure
        await checkpointer.flush()
    return ended - started, [b - a for a, b in itertools.pairwise([*STAMPS, ended])]


def _size(path: str) -> int:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        count = db.execute("PRAGMA page_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    return int(count * size)


def _paired(folder: str, name: str, cycles: int, pairs: int, keyed: bool) -> dict[str, Any]:
    """Runs with no store and with SQLite, back to back in alternating order."""
    none: list[float] = []
    sqlite: list[float] = []
    ends: list[float] = []  # what the end took with a store, less what it took without
    for pair in range(pairs):
        path = os.path.join(folder, f"{name}-{pair}.db")
        open_store(path)  # opened once per process, as a program would: not timed
        order = [None, path] if pair % 2 == 0 else [path, None]
        end = 0.0
        for store in order:
            flow = build(cycles, tool_calls=True, keyed=keyed)
            seconds, times = asyncio.run(_timed(flow, store))
            (none if store is None else sqlite).append(seconds)
            end += times[-1] if store is not None else -times[-1]
        ends.append(end)
    ratios = [with_store / alone for with_store, alone in zip(sqlite, none, strict=True)]
    low, _, high = statistics.quantiles(ratios, n=4)  # the middle half: how noisy it was
    return {
        "none_s": statistics.median(none),
        "sqlite_s": statistics.median(sqlite),
        "overhead": statistics.median(ratios) - 1,
        "middle": (low - 1, high - 1),
        "end_s": statistics.median(ends),
        "pairs": pairs,
    }


def measure(repeats: int = 3) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        per_step: dict[str, list[float]] = {"none": [], "sqlite": []}
        for repeat in range(repeats):
            path = os.path.join(folder, f"growing-{repeat}.db")
            for kind, store in (("none", None), ("sqlite", path)):
                _, times = asyncio.run(_timed(build(200, tool_calls=True), store))
                per_step[kind].extend(times[:-1])  # the last: the run's end
        figures["step_none_us"] = statistics.median(per_step["none"]) * 1e6
        figures["step_sqlite_us"] = statistics.median(per_step["sqlite"]) * 1e6
        sizes: dict[int, int] = {}
        for steps in (50, 100, 150, 200):
            path = os.path.join(folder, f"size-{steps}.db")
            asyncio.run(_timed(build(steps, tool_calls=True), path))
            sizes[steps] = _size(path)
        figures["sizes"] = sizes
        # Ratios are noisy on a shared machine: many short pairs. The medians of 25
        # pairs moved by 10 points between runs; of 101, by about 3 (a pair's ratio
        # ranges over tens of points: the machine's speed changes from run to run).
        figures["long"] = _paired(folder, "long", 500, 64 * repeats + 9, keyed=False)
        figures["keyed"] = _paired(folder, "keyed", 500, 8 * repeats + 1, keyed=True)
    return figures


def _span(paired: dict[str, Any]) -> str:
    low, high = paired["middle"]
    return f"{low:.0%} to {high:.0%}"


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
        f"overhead {long['overhead']:.1%} (target < 20%; median of {long['pairs']} pairs, the "
        f"middle half {_span(long)}; of it, the run's end, its last commits written and "
        f"waited for: {long['end_s'] * 1e3:.1f} ms); with a tool taking the run context (its calls "
        f"committed and waited for before they run) {keyed['sqlite_s']:.2f} s -> overhead "
        f"{keyed['overhead']:.1%} ({_span(keyed)})"
    )


SLOWER_UNDER_VALGRIND = 50  # about: time-based thresholds are scaled to match


def _counted(store: str, cycles: int) -> None:
    """A warm-up run and a counted run of ``cycles`` cycles (under valgrind)."""
    scale = SLOWER_UNDER_VALGRIND
    flowgraph._engine.run.WORTH_SAVING *= scale
    checkpointer = None
    if store != "none":
        checkpointer = fg.SQLiteCheckpointer(store, quiet=0.005 * scale, max_wait=0.1 * scale)

    async def run() -> None:  # returns None: asyncio.run formats its result, at length
        await build(cycles, tool_calls=True).arun("go", context={"ticks": 0}, store=checkpointer)

    for _ in range(2):
        asyncio.run(run())


def _count(folder: str, store: str, cycles: int) -> tuple[int, int]:
    """Instructions counted by callgrind in the event loop's thread, and in all threads
    (the writer's and the tool calls' too)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(folder, f"callgrind-{cycles}-{os.path.basename(store)}")
    command = ["valgrind", "--tool=callgrind", "--separate-threads=yes"]
    command += [f"--callgrind-out-file={out}", sys.executable, "-m", "benchmarks.checkpoint"]
    subprocess.run(
        [*command, "--counted", store, str(cycles)], cwd=root, capture_output=True, check=True
    )
    by_thread: dict[str, int] = {}
    for name in os.listdir(folder):
        if name.startswith(os.path.basename(out) + "-"):  # one file per thread: -01 is main
            with open(os.path.join(folder, name)) as counts:
                found = re.search(r"^summary: (\d+)", counts.read(), re.MULTILINE)
            by_thread[name] = int(found.group(1)) if found else 0
    main = by_thread[os.path.basename(out) + "-01"]
    return main, sum(by_thread.values())


def instructions() -> dict[str, tuple[float, float]] | None:
    """Instructions per cycle with no store and with SQLite, in the loop's thread and in
    all threads: the difference between runs of 500 and 250 cycles, so start-up and
    imports cancel out. None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    per_cycle: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("none", "sqlite"):
            counts = []
            for cycles in (250, 500):
                store = "none" if kind == "none" else os.path.join(folder, f"{cycles}.db")
                counts.append(_count(folder, store, cycles))
            (main_250, all_250), (main_500, all_500) = counts
            more = 2 * 250  # two runs of 250 cycles more
            per_cycle[kind] = ((main_500 - main_250) / more, (all_500 - all_250) / more)
    return per_cycle


def report_instructions(per_cycle: dict[str, tuple[float, float]] | None) -> str:
    if per_cycle is None:
        return "checkpoint instructions: valgrind is not installed (apt-get install valgrind)"
    (none, none_all), (sqlite, sqlite_all) = per_cycle["none"], per_cycle["sqlite"]
    return (
        f"checkpoint instructions per cycle (callgrind), in the event loop's thread: "
        f"{none / 1000:.0f}k with no store, {sqlite / 1000:.0f}k with SQLite -> overhead "
        f"{sqlite / none - 1:.1%}; in all threads (the writer's too): {none_all / 1000:.0f}k, "
        f"{sqlite_all / 1000:.0f}k -> {sqlite_all / none_all - 1:.1%}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instructions", action="store_true", help="count, under valgrind")
    parser.add_argument("--counted", nargs=2, metavar=("STORE", "CYCLES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.counted:
        _counted(args.counted[0], int(args.counted[1]))
    elif args.instructions:
        print(report_instructions(instructions()))
    else:
        print(report(measure()))
