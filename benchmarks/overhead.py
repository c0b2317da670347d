"""Client CPU per LLM request: flowgraph vs the hand-written loop, side by side.

Both drive the reference flow (4 requests) against the scripted server running in
another process, on one event loop, alternating in rounds so that the machine's
noise falls on both alike. Reports CPU seconds of this process per request.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from openai import AsyncOpenAI

import flowgraph as fg
from benchmarks.reference import ANSWER, build_flow, handwritten, server_process

REQUESTS_PER_RUN = 4


async def _measure(url: str, rounds: int, runs: int) -> dict[str, Any]:
    client = AsyncOpenAI(base_url=url, api_key="bench")
    flow = build_flow(fg.OpenAIModel("bench", client=client))
    samples: dict[str, list[float]] = {"handwritten": [], "flowgraph": []}

    async def hand() -> None:
        assert await handwritten(client, "bench") == ANSWER

    async def graph() -> None:
        result = await flow.arun("I want a refund for order A-1.")
        assert result.output == ANSWER and result.usage.requests == REQUESTS_PER_RUN

    for fn in (hand, graph):  # warm up: connections, imports, caches
        for _ in range(20):
            await fn()
    for _ in range(rounds):
        for name, fn in (("handwritten", hand), ("flowgraph", graph)):
            started = time.process_time()
            for _ in range(runs):
                await fn()
            samples[name].append((time.process_time() - started) / (runs * REQUESTS_PER_RUN))
    await client.close()
    hand_cpu = statistics.median(samples["handwritten"])
    graph_cpu = statistics.median(samples["flowgraph"])
    return {
        "handwritten_ms": hand_cpu * 1e3,
        "flowgraph_ms": graph_cpu * 1e3,
        "ratio": graph_cpu / hand_cpu,
    }


def measure(rounds: int = 7, runs: int = 50) -> dict[str, Any]:
    with server_process() as url:
        return asyncio.run(_measure(url, rounds, runs))


if __name__ == "__main__":
    figures = measure()
    print(
        f"client CPU per request: hand-written {figures['handwritten_ms']:.3f} ms, "
        f"flowgraph {figures['flowgraph_ms']:.3f} ms, ratio {figures['ratio']:.3f}x"
    )
