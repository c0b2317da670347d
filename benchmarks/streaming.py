"""Client CPU per streamed chunk: flowgraph's stream against a hand-written loop.

The scripted server, in another process, answers every request with a text in many
chunks. The hand-written loop asks with ``client.chat.completions.create(stream=True)``
and reads ``async for chunk in stream``, joining the text; flowgraph runs a one-agent
flow with ``flow.astream()`` and joins its ``text_delta`` events. Rounds alternate.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from openai import AsyncOpenAI

import flowgraph as fg
from benchmarks.reference import server_process

CHUNKS = 400
QUESTION = "Tell me a long story."


async def handwritten(client: AsyncOpenAI) -> int:
    """One streamed request read chunk by chunk: returns the chunks of text read."""
    stream = await client.chat.completions.create(
        model="bench",
        messages=[{"role": "system", "content": "Talk."}, {"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, pieces = [], 0
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
            pieces += 1
    assert "".join(text) == "word " * CHUNKS
    return pieces


def build_flow(model: fg.Model) -> fg.Flow:
    flow = fg.Flow("talk", model=model)
    flow.edge(fg.START, fg.Agent("talker", "Talk."))
    flow.edge("talker", fg.END)
    return flow


async def streamed(flow: fg.Flow) -> int:
    text, pieces = [], 0
    async for event in flow.astream(QUESTION):
        if event.type == "text_delta":
            text.append(event.delta)
            pieces += 1
    assert "".join(text) == "word " * CHUNKS
    return pieces


async def _measure(url: str, rounds: int, runs: int) -> dict[str, Any]:
    client = AsyncOpenAI(base_url=url, api_key="bench", max_retries=0)
    flow = build_flow(fg.OpenAIModel("bench", client=client))
    ways: dict[str, Callable[[], Awaitable[int]]] = {
        "handwritten": lambda: handwritten(client),
        "flowgraph": lambda: streamed(flow),
    }
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for way in ways.values():  # warm up: connections, imports, caches
        for _ in range(3):
            assert await way() == CHUNKS
    for _ in range(rounds):
        for name, way in ways.items():
            started = time.process_time()
            pieces = sum([await way() for _ in range(runs)])
            samples[name].append((time.process_time() - started) / pieces)
    await client.close()
    hand, graph = (statistics.median(samples[name]) for name in ways)
    return {"handwritten_us": hand * 1e6, "flowgraph_us": graph * 1e6, "ratio": graph / hand}


def measure(rounds: int = 5, runs: int = 10) -> dict[str, Any]:
    with server_process(chunks=CHUNKS) as url:
        return asyncio.run(_measure(url, rounds, runs))


def report(figures: dict[str, Any]) -> str:
    return (
        f"client CPU per streamed chunk ({CHUNKS} a reply): hand-written `async for chunk` "
        f"loop {figures['handwritten_us']:.1f} us, flowgraph.astream "
        f"{figures['flowgraph_us']:.1f} us -> {figures['ratio']:.3f}x (target <= 1.1x)"
    )


if __name__ == "__main__":
    print(report(measure()))
