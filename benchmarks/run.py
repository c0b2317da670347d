"""Run every benchmark and print the figures as ratios against their baselines.

    make bench        # or: python -m benchmarks.run [--quick]

Each ratio is measured side by side in one run: these machines are shared and
noisy, so compare ratios, not absolute times, across runs.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import chain, checkpoint, concurrency, imports, long, overhead, render, streaming


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and runs")
    quick = parser.parse_args().quick

    figures = overhead.measure(rounds=3 if quick else 7, runs=20 if quick else 50)
    print(
        f"client CPU per request (reference flow, 4 requests): hand-written loop "
        f"{figures['handwritten_ms']:.2f} ms, flowgraph {figures['flowgraph_ms']:.2f} ms "
        f"-> {figures['ratio']:.3f}x (target <= 1.0x)"
    )

    for turns in (60, 150):
        print(long.report(turns, long.measure(turns, rounds=1 if quick else 3)), flush=True)
    print(streaming.report(streaming.measure(rounds=3 if quick else 5)), flush=True)

    runs = 200 if quick else 1000
    figures = concurrency.measure(runs=runs, repeats=1 if quick else 2, streamed=True)
    print(
        f"{runs} concurrent runs, 50 ms server latency: wall {figures['wall_ratio']:.3f}x, "
        f"streamed {figures['streamed_wall_ratio']:.3f}x (target <= 1.2x), peak memory "
        f"{figures['peak_ratio']:.3f}x (target <= 1.5x); "
        f"flowgraph {figures['flowgraph']['wall']:.1f} s / "
        f"{figures['flowgraph']['peak_kb'] / 1024:.0f} MiB, hand-written "
        f"{figures['handwritten']['wall']:.1f} s / "
        f"{figures['handwritten']['peak_kb'] / 1024:.0f} MiB"
    )

    figures = imports.measure(repeats=5 if quick else 15)
    print(
        f"import time: openai {figures['openai_ms']:.0f} ms, flowgraph "
        f"{figures['flowgraph_ms']:.0f} ms -> {figures['ratio']:.2f}x (target <= 1.5x); "
        f"flowgraph with openai loaded {figures['both_ms']:.0f} ms -> "
        f"{figures['both_ratio']:.2f}x"
    )

    figures = chain.measure(runs=3 if quick else 9)
    print(
        f"engine overhead per step, 1,000-step chain of ToolSteps: async steps "
        f"{figures['async_us']:.1f} us median (aim < 50 us), {figures['async_mean_us']:.1f} us "
        f"mean; sync steps (run in a worker thread) {figures['sync_us']:.1f} us median, "
        f"{figures['sync_mean_us']:.1f} us mean"
    )

    print(checkpoint.report(checkpoint.measure(repeats=1 if quick else 3)))
    if not quick:  # about two minutes under valgrind
        print(checkpoint.report_instructions(checkpoint.instructions()))

    figures = render.measure(repeats=1 if quick else 3)
    print(
        f"rendering a {figures['nodes']}-node, {figures['edges']}-edge flow to SVG: "
        f"dot {figures['dot_s']:.1f} s; flowgraph's DOT text "
        f"{figures['build_s'] * 1000:.0f} ms = {figures['share']:.1%} of it (target < 10%)"
    )


if __name__ == "__main__":
    main()
