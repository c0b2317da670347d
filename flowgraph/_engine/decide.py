"""The one place where the next node is chosen.

At a node's exit the next node is decided in this order:

0. a ``before=`` predicate that held as an agent's turn began, or a tool's
   ``fg.Handoff`` during it: code chose among the edges;
1. predicate edges, in the order declared: the first that is true wins;
2. LLM-evaluated edges: for an Agent, the ``transfer_to_<node>`` tool it called
   during its own turn; for any other node, one router request: a structured-output
   request that picks one condition or none;
3. the unconditional edge (the fallback, AG2's after-work);
4. nothing left: the run ends, and the result says why.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from flowgraph._base.callables import call_inline
from flowgraph._base.failures import ModelError, RunError
from flowgraph._base.messages import Message
from flowgraph._engine.run import Run, Visit
from flowgraph._graph.edges import Edge, Exits

NONE = "none"
ATTEMPTS = 2
PROMPT = """You decide where a workflow goes next, after its step {node!r}.
Read the conversation, then pick the first of these conditions that holds:
{conditions}
If none of them holds, choose "{none}"."""
QUESTION = 'Which condition holds? Answer with JSON only: {{"choice": one of {choices}}}.'


async def decide(run: Run, node: str, exits: Exits, visit: Visit, *, is_agent: bool) -> Edge | None:
    """Choose the edge to leave by, in the documented order; None ends the run."""
    if visit.decided:
        return visit.handoff  # a tool's fg.Handoff or a before= condition: code chose
    for edge in exits.predicates:
        try:
            taken: object = await call_inline(edge.when, run.ctx)  # type: ignore[arg-type]
        except Exception as exc:
            raise RunError(
                f"the predicate {edge.label!r} of {edge.describe()} raised "
                f"{type(exc).__name__}: {exc}",
                node=edge.source,
            ) from exc
        if taken:
            if visit.handoff is not None and visit.handoff.target != edge.target:
                # The transfer was answered "Transferred to ..."; say what happened instead.
                run.append(
                    {
                        "role": "system",
                        "content": (
                            f"The hand-off to {visit.handoff.target} did not happen: a rule of the "
                            f"flow sent the conversation to {edge.target} instead."
                        ),
                    }
                )
            return edge
    if visit.handoff is not None:
        return visit.handoff
    if exits.llm and not is_agent:
        chosen = await route(run, node, exits.llm)
        if chosen is not None:
            return chosen
    return exits.fallback


async def route(run: Run, node: str, edges: Sequence[Edge]) -> Edge | None:
    """Ask the node's model which condition holds; None when none does.

    A reply that is not one of the choices is answered once with the problem;
    a second bad reply raises ``ModelError``.
    """
    edges = [edge for edge in edges if await offered(run, edge)]
    if not edges:
        return None
    choices = [edge.target for edge in edges] + [NONE]
    context = run.ctx.context
    conditions = "\n".join(f'- "{edge.target}": {edge.condition(context)}' for edge in edges)
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


async def offered(run: Run, edge: Edge) -> bool:
    """Whether an LLM condition is offered now: its ``available=`` holds (if it has one)."""
    if edge.available is None:
        return True
    try:
        return bool(await call_inline(edge.available, run.ctx))
    except Exception as exc:
        raise RunError(
            f"the available= predicate of {edge.describe()} raised {type(exc).__name__}: {exc}",
            node=edge.source,
        ) from exc
