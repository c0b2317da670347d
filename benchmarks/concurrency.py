"""1,000 concurrent runs of the reference flow in one process, against a server that
takes 50 ms per request: wall time and peak memory, flowgraph vs the hand-written loop,
and flowgraph streamed (``flow.astream()``, every event read, the model streaming).

Each variant runs in a fresh subprocess (so peak RSS is its own), alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.reference import server_process


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def _worker(impl: str, url: str, runs: int) -> dict[str, Any]:
    from openai import AsyncOpenAI, Timeout

    import flowgraph as fg
    from benchmarks.reference import ANSWER, build_flow, handwritten

    # A thousand clients connecting at once keep the loop busy for seconds: give the
    # connect phase room (both variants share this client and its settings).
    client = AsyncOpenAI(base_url=url, api_key="bench", timeout=Timeout(600, connect=120))
    flow = build_flow(fg.OpenAIModel("bench", client=client))

    async def one() -> None:
        if impl == "flowgraph":
            output = (await flow.arun("I want a refund for order A-1.")).output
        elif impl == "streamed":
            async for event in flow.astream("I want a refund for order A-1."):
                output = event.result.output if event.type == "run_finished" else None
        else:
            output = await handwritten(client, "bench")
        assert output == ANSWER

    await asyncio.gather(*(one() for _ in range(10)))  # warm up
    base = _rss_kb()
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(runs)))
    wall = time.perf_counter() - started
    await client.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"wall": wall, "peak_kb": peak, "base_kb": base}


def measure(
    runs: int = 1000, latency: float = 0.05, repeats: int = 2, streamed: bool = False
) -> dict[str, Any]:
    """``streamed``: also the streamed variant (``streamed_wall_ratio``)."""
    samples: dict[str, list[dict[str, Any]]] = {"handwritten": [], "flowgraph": []}
    if streamed:
        samples["streamed"] = []
    with server_process(latency) as url:
        for repeat in range(repeats):
            order = list(samples) if repeat % 2 == 0 else list(samples)[::-1]
            for impl in order:  # alternate who goes first: the server warms up too
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.concurrency",
                        "--worker",
                        impl,
                        "--url",
                        url,
                        "--runs",
                        str(runs),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                samples[impl].append(json.loads(out.stdout))
    figures: dict[str, Any] = {}
    for impl, rows in samples.items():
        figures[impl] = {
            key: statistics.median(row[key] for row in rows)
            for key in ("wall", "peak_kb", "base_kb")
        }
    hand, graph = figures["handwritten"], figures["flowgraph"]
    figures["wall_ratio"] = graph["wall"] / hand["wall"]
    figures["peak_ratio"] = graph["peak_kb"] / hand["peak_kb"]
    figures["growth_ratio"] = (graph["peak_kb"] - graph["base_kb"]) / max(
        1, hand["peak_kb"] - hand["base_kb"]
    )
    if streamed:
        figures["streamed_wall_ratio"] = figures["streamed"]["wall"] / hand["wall"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=["handwritten", "flowgraph", "streamed"])
    parser.add_argument("--url")
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(_worker(args.worker, args.url, args.runs))))
        return
    figures = measure(args.runs, streamed=True)
    for impl in ("handwritten", "flowgraph", "streamed"):
        row = figures[impl]
        print(
            f"{impl:12} wall {row['wall']:.2f} s, peak RSS {row['peak_kb'] / 1024:.0f} MiB "
            f"(after warm-up {row['base_kb'] / 1024:.0f} MiB)"
        )
    print(
        f"ratios: wall {figures['wall_ratio']:.3f}x, peak memory {figures['peak_ratio']:.3f}x,"
        f" memory growth during the runs {figures['growth_ratio']:.3f}x; streamed wall "
        f"{figures['streamed_wall_ratio']:.3f}x"
    )


if __name__ == "__main__":
    main()
