"""The reference support flow (4 requests, 2 tools, 1 hand-off), built two ways:
with flowgraph, and as a hand-written AsyncOpenAI tool loop doing the same requests.

The scripted server answers by the number of tool results in the request:
lookup_order, then transfer_to_refund, then issue_refund, then a text answer.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any, cast

from openai import AsyncOpenAI

import flowgraph as fg
from flowgraph.testing import Answer, ChatRequest, tool_call

QUESTION = "I want a refund for order A-1."
TRIAGE = "You are triage. Route the customer."
REFUND = "You are the refund desk."
ANSWER = "Your refund for A-1 is on its way."


def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order by its id."""
    return {"id": order_id, "status": "delivered"}


def issue_refund(order_id: str) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


def reply_for(request: ChatRequest) -> Answer:
    answered = sum(1 for message in request.messages if message["role"] == "tool")
    script: list[Answer] = [
        tool_call("lookup_order", {"order_id": "A-1"}),
        tool_call("transfer_to_refund"),
        tool_call("issue_refund", {"order_id": "A-1"}),
        ANSWER,
    ]
    return script[answered]


def build_flow(model: fg.Model) -> fg.Flow:
    triage = fg.Agent("triage", TRIAGE, tools=[lookup_order])
    refund = fg.Agent("refund", REFUND, tools=[issue_refund])
    flow = fg.Flow("reference", model=model)
    flow.edge(fg.START, triage)
    flow.edge(triage, refund, when="The customer wants money back.")
    flow.edge(triage, fg.END)
    flow.edge(refund, fg.END)
    flow.validate()
    return flow


# -- the hand-written baseline: what a careful engineer writes without a framework --


def _tool(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
        },
    }


ORDER_ID = {"order_id": {"type": "string"}}
AGENTS: dict[str, tuple[str, list[dict[str, Any]], dict[str, Callable[..., Any]]]] = {
    "triage": (
        TRIAGE,
        [
            _tool("lookup_order", "Look up an order by its id.", ORDER_ID),
            _tool("transfer_to_refund", "Hand off to refund.", {}),
        ],
        {"lookup_order": lookup_order},
    ),
    "refund": (
        REFUND,
        [_tool("issue_refund", "Refund an order.", ORDER_ID)],
        {"issue_refund": issue_refund},
    ),
}


async def handwritten(client: AsyncOpenAI, model: str) -> str | None:
    """The same conversation as the flow, with a plain loop over the openai client."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    agent = "triage"
    while True:
        instructions, tools, functions = AGENTS[agent]
        request: list[Any] = [{"role": "system", "content": instructions}, *messages]
        response = await client.chat.completions.create(
            model=model, messages=request, tools=cast(Any, tools)
        )
        reply = response.choices[0].message
        calls: list[Any] = list(reply.tool_calls or [])
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }
                for c in calls
            ]
        messages.append(message)
        if not calls:
            return reply.content
        for call in calls:
            name = call.function.name
            if name.startswith("transfer_to_"):
                agent, content = name.removeprefix("transfer_to_"), "Transferred."
            else:
                arguments = json.loads(call.function.arguments)
                content = json.dumps(functions[name](**arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": content})


@contextlib.contextmanager
def server_process(latency: float = 0.0, turns: int = 0, chunks: int = 0) -> Iterator[str]:
    """Start the scripted server in a subprocess; yields its base URL. ``turns``: it
    serves long.py's tool loop of that many turns instead of the reference flow;
    ``chunks``: it answers every request with a text streamed in that many chunks."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "benchmarks._server"),
            *("--latency", str(latency), "--turns", str(turns), "--chunks", str(chunks)),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)
