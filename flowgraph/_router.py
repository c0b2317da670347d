"""The router: one structured-output request that picks an LLM-evaluated edge
for a node that is not an agent (an agent decides with its transfer tools)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowgraph._edges import Edge
from flowgraph._errors import ModelError
from flowgraph._messages import Message

if TYPE_CHECKING:
    from flowgraph._run import Run

NONE = "none"
ATTEMPTS = 2
PROMPT = """You decide where a workflow goes next, after its step {node!r}.
Read the conversation, then pick the first of these conditions that holds:
{conditions}
If none of them holds, choose "{none}"."""
QUESTION = 'Which condition holds? Answer with JSON only: {{"choice": one of {choices}}}.'


async def route(run: Run, node: str, edges: Sequence[Edge]) -> Edge | None:
    """Ask the node's model which condition holds; None when none does.

    A reply that is not one of the choices is answered once with the problem;
    a second bad reply raises ``ModelError``.
    """
    choices = [edge.target for edge in edges] + [NONE]
    conditions = "\n".join(f'- "{edge.target}": {edge.when}' for edge in edges)
    messages: list[Message] = [
        {"role": "system", "content": PROMPT.format(node=node, conditions=conditions, none=NONE)},
        *run.messages,
        {"role": "user", "content": QUESTION.format(choices=json.dumps(choices))},
    ]
    for _ in range(ATTEMPTS):
        completion = await run.complete(node, messages, response_format=_format(choices))
        reply = completion.message.get("content") or ""
        choice = _parse(reply, choices)
        if choice is not None:
            return next((edge for edge in edges if edge.target == choice), None)
        messages += [
            {"role": "assistant", "content": reply},
            {"role": "user", "content": f"That is not valid. {QUESTION.format(choices=choices)}"},
        ]
    raise ModelError(
        f"the router of node {node!r} did not pick one of {choices}: its last reply was "
        f"{reply[:200]!r}. Use a model that supports structured output (json_schema)",
        node=node,
    )


def _format(choices: list[str]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {"choice": {"type": "string", "enum": choices}},
        "required": ["choice"],
        "additionalProperties": False,
    }
    return {
        "type": "json_schema",
        "json_schema": {"name": "route", "strict": True, "schema": schema},
    }


def _parse(reply: str, choices: list[str]) -> str | None:
    try:
        data = json.loads(reply)
    except ValueError:
        return None
    choice = data.get("choice") if isinstance(data, dict) else None
    return choice if choice in choices else None
