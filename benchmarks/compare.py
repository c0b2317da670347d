"""Before and after: this checkout's benchmarks against another checkout's, in one run.

    git worktree add ../before <commit>
    python -m benchmarks.compare ../before [--rounds 3]

Each round runs every benchmark once in each checkout, the order alternating from
round to round, each in a fresh interpreter that imports that checkout's flowgraph
and its own ``benchmarks`` package. The table gives the median of the rounds side
by side. Most figures are already ratios against a baseline measured in the same
process (a hand-written openai loop, ``import openai``, a run with no store), so the
machine's noise cancels twice.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Figure:
    label: str
    key: str  # the figure in the benchmark's result; dots reach into nested dicts
    unit: str  # "x", "us" or "%"


# Each benchmark is called once per round and checkout; a call gives several figures.
CALLS: dict[str, tuple[str, list[Figure]]] = {
    "overhead": (
        "measure(rounds=3, runs=20)",
        [Figure("client CPU per request, flowgraph / hand-written loop", "ratio", "x")],
    ),
    "concurrency": (
        "measure(runs=1000, repeats=1)",
        [
            Figure("1,000 concurrent runs: wall, flowgraph / hand-written", "wall_ratio", "x"),
            Figure(
                "1,000 concurrent runs: peak memory, flowgraph / hand-written", "peak_ratio", "x"
            ),
        ],
    ),
    "imports": (
        "measure(repeats=5)",
        [Figure("import flowgraph / import openai", "ratio", "x")],
    ),
    "chain": (
        "measure(runs=3)",
        [
            Figure("1,000-step chain: engine time per async step", "async_us", "us"),
            Figure("1,000-step chain: engine time per sync step", "sync_us", "us"),
        ],
    ),
    "checkpoint": (
        "measure(repeats=1)",
        [Figure("checkpoint overhead, 1,000 steps, SQLite / no store", "long.overhead", "%")],
    ),
}

SNIPPET = """
import json, sys
sys.path.insert(0, {tree!r})
from benchmarks import {module}
print("FIGURES " + json.dumps({module}.{call}, default=str))
"""


def _run(tree: Path, module: str, call: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # children (a server, imports) too
    done = subprocess.run(
        [sys.executable, "-c", SNIPPET.format(tree=str(tree), module=module, call=call)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("FIGURES ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{module} failed in {tree}:\n{done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(lines[-1].removeprefix("FIGURES "))
    return figures


def _value(figures: dict[str, Any], key: str) -> float:
    value: Any = figures
    for part in key.split("."):
        value = value[part]
    return float(value)


def _show(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.1%}"
    return f"{value:.3f}x" if unit == "x" else f"{value:.1f} us"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("other", type=Path, help="the other checkout (e.g. a git worktree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=list(CALLS), help="some benchmarks only")
    args = parser.parse_args()
    trees = {"other": args.other.resolve(), "this": HERE}
    samples: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        order = list(trees.items()) if round_ % 2 == 0 else list(reversed(trees.items()))
        for module, (call, figures) in CALLS.items():
            if args.only and module not in args.only:
                continue
            for name, tree in order:
                result = _run(tree, module, call)
                for figure in figures:
                    samples.setdefault((figure.label, name), []).append(_value(result, figure.key))
            print(f"round {round_ + 1}: {module} done", file=sys.stderr, flush=True)
    width = max(len(figure.label) for _, figures in CALLS.values() for figure in figures)
    print(f"{'median of ' + str(args.rounds) + ' rounds':<{width}}  {'other':>10}  {'this':>10}")
    for _, figures in CALLS.values():
        for figure in figures:
            if (figure.label, "this") not in samples:
                continue
            other = statistics.median(samples[(figure.label, "other")])
            this = statistics.median(samples[(figure.label, "this")])
            rounds = ", ".join(
                f"{_show(a, figure.unit)}/{_show(b, figure.unit)}"
                for a, b in zip(
                    samples[(figure.label, "other")], samples[(figure.label, "this")], strict=True
                )
            )
            print(
                f"{figure.label:<{width}}  {_show(other, figure.unit):>10}  "
                f"{_show(this, figure.unit):>10}   (rounds, other/this: {rounds})"
            )


if __name__ == "__main__":
    main()
