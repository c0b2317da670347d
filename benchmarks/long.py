"""Client CPU per request in long conversations: a tool loop of many turns.

One agent calls a tool turn after turn (the scripted server, in another process, asks
for ``lookup_order`` until the conversation holds ``turns`` tool results, then
answers), so each request carries the whole history so far. Three clients do the same
requests, alternating in rounds:

- raw: the request body as JSON bytes over httpx2 (the openai client's HTTP library),
  the reply parsed with ``json``:
  the least any Python client can do;
- typed: the hand-written loop on ``client.chat.completions.create()``;
- flowgraph: an ``fg.Agent`` with the tool and ``max_turns`` to match.

Reports CPU seconds of this process per request, averaged over whole conversations.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any, cast

import httpx2 as httpx
from openai import AsyncOpenAI

import flowgraph as fg
from benchmarks.reference import server_process
from flowgraph.testing import Answer, ChatRequest, tool_call

QUESTION = "Look up the orders, one at a time, until I say stop."
INSTRUCTIONS = "You look orders up."
DONE = "All orders looked up."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Look up an order by its id.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
                "additionalProperties": False,
            },
        },
    }
]


def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order by its id."""
    return {"id": order_id, "status": "delivered", "note": "left with a neighbour"}


def long_reply(turns: int) -> Any:
    """The server's script: a tool call per turn until ``turns`` were answered."""

    def reply(request: ChatRequest) -> Answer:
        answered = sum(1 for message in request.messages if message["role"] == "tool")
        if answered < turns:
            return tool_call("lookup_order", {"order_id": f"A-{answered}"})
        return DONE

    return reply


def _assistant(reply: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
    if reply.get("tool_calls"):
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": c["function"]}
            for c in reply["tool_calls"]
        ]
    return message


async def raw(http: httpx.AsyncClient, url: str) -> int:
    """The loop as JSON over httpx: returns the number of requests made."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    requests = 0
    while True:
        body = {
            "model": "bench",
            "messages": [{"role": "system", "content": INSTRUCTIONS}, *messages],
            "tools": TOOLS,
        }
        response = await http.post(
            f"{url}/chat/completions",
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json", "authorization": "Bearer bench"},
        )
        requests += 1
        reply = json.loads(response.content)["choices"][0]["message"]
        messages.append(_assistant(reply))
        if not reply.get("tool_calls"):
            return requests
        for call in reply["tool_calls"]:
            result = lookup_order(**json.loads(call["function"]["arguments"]))
            messages.append(
                {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)}
            )


async def typed(client: AsyncOpenAI) -> int:
    """The hand-written loop on the typed client: returns the number of requests made."""
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    requests = 0
    while True:
        response = await client.chat.completions.create(
            model="bench",
            messages=[{"role": "system", "content": INSTRUCTIONS}, *messages],
            tools=cast(Any, TOOLS),
        )
        requests += 1
        reply = response.choices[0].message
        messages.append(_assistant(reply.model_dump()))
        if not reply.tool_calls:
            return requests
        for call in reply.tool_calls:
            result = lookup_order(**json.loads(call.function.arguments))  # type: ignore[union-attr]
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
            )


def build_flow(model: fg.Model, turns: int) -> fg.Flow:
    flow = fg.Flow("long", model=model, max_steps=2)
    agent = fg.Agent("clerk", INSTRUCTIONS, tools=[lookup_order], max_turns=turns + 1)
    flow.edge(fg.START, agent)
    flow.edge(agent, fg.END)
    return flow


async def _measure(url: str, turns: int, rounds: int) -> dict[str, float]:
    client = AsyncOpenAI(base_url=url, api_key="bench", max_retries=0)
    flow = build_flow(fg.OpenAIModel("bench", client=client), turns)
    samples: dict[str, list[float]] = {"raw": [], "typed": [], "flowgraph": []}

    async def graph() -> int:
        result = await flow.arun(QUESTION)
        assert result.output == DONE, result.output
        return result.usage.requests

    async with httpx.AsyncClient(timeout=60) as http:
        ways = {"raw": lambda: raw(http, url), "typed": lambda: typed(client), "flowgraph": graph}
        for way in ways.values():  # warm up: connections, imports, caches
            assert await way() == turns + 1
        for _ in range(rounds):
            for name, way in ways.items():
                started = time.process_time()
                requests = await way()
                samples[name].append((time.process_time() - started) / requests)
    await client.close()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        **{f"{name}_ms": seconds * 1e3 for name, seconds in medians.items()},
        "typed_ratio": medians["typed"] / medians["raw"],
        "flowgraph_ratio": medians["flowgraph"] / medians["raw"],
    }


def measure(turns: int = 150, rounds: int = 3) -> dict[str, float]:
    with server_process(turns=turns) as url:
        return asyncio.run(_measure(url, turns, rounds))


def report(turns: int, figures: dict[str, float]) -> str:
    return (
        f"client CPU per request, a {turns}-turn tool loop: raw JSON post "
        f"{figures['raw_ms']:.2f} ms; typed client {figures['typed_ms']:.2f} ms "
        f"-> {figures['typed_ratio']:.1f}x; flowgraph {figures['flowgraph_ms']:.2f} ms "
        f"-> {figures['flowgraph_ratio']:.1f}x (target <= 3x)"
    )


if __name__ == "__main__":
    for turns in (60, 150):
        print(report(turns, measure(turns)), flush=True)
