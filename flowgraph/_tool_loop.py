"""An agent's visit: the tool loop, as openai-node's ``runTools``.

Request a completion; answer every tool call it makes (concurrently), sending
bad arguments, unknown tools and exceptions back to the model as tool messages;
run the ``after_completion`` hooks; repeat until the model answers without tool
calls, hands off, or the agent's ``max_turns`` is reached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from flowgraph._callables import call_inline
from flowgraph._edges import NO_EXITS, Edge, Exits
from flowgraph._errors import RunError
from flowgraph._hooks import ToolEvent
from flowgraph._messages import Message
from flowgraph._tools import Tool, ToolArgumentsError

if TYPE_CHECKING:
    from flowgraph._nodes import Agent
    from flowgraph._run import Run, Visit

EMPTY_REPLY = (
    "Your last reply was empty. Answer the conversation, call one of your tools, "
    "or hand off with a transfer tool."
)


async def run_agent(run: Run, agent: Agent) -> Visit:
    """One visit of ``agent``: its tool loop, ended by an answer, a hand-off or max_turns."""
    from flowgraph._run import Visit

    exits = run.plan.exits.get(agent.name, NO_EXITS)
    tools, schemas = run.plan.agent_tools[agent.name]
    output: str | None = None
    handoff: Edge | None = None
    for _ in range(agent.max_turns):
        message = await _request(run, agent, schemas)
        calls = message.get("tool_calls")
        content = message.get("content")
        if content:
            output = content
        if calls:
            handoff = await _answer(run, agent, calls, tools, exits)
        elif not content:
            run.append({"role": "system", "content": EMPTY_REPLY})
        await run.after_completion(agent, message)
        if handoff is not None or (content and not calls):
            break
    else:
        run.note(f"agent {agent.name!r} reached max_turns={agent.max_turns}")
    return Visit(output=output, handoff=handoff)


async def _request(run: Run, agent: Agent, schemas: list[dict[str, Any]]) -> Message:
    try:
        system: str = await call_inline(agent.system_prompt, run.ctx)
    except Exception as exc:
        raise RunError(
            f"the instructions of agent {agent.name!r} raised {type(exc).__name__}: {exc}",
            node=agent.name,
        ) from exc
    # An empty system message is refused by strict providers: leave it out.
    messages = [{"role": "system", "content": system}, *run.messages] if system else run.messages
    completion = await run.complete(agent.name, messages, tools=schemas)
    message = completion.message
    if message.get("content") or message.get("tool_calls"):
        message["name"] = agent.name
        run.append(message)
    return message


async def _answer(
    run: Run, agent: Agent, calls: Sequence[Message], tools: dict[str, Tool], exits: Exits
) -> Edge | None:
    """Answer each tool call with exactly one tool message, in the calls' order."""
    handoff: Edge | None = None
    texts: list[str | None] = [None] * len(calls)
    pending: dict[int, Awaitable[str]] = {}
    for index, call in enumerate(calls):
        name = call["function"]["name"]
        edge = exits.transfer(name)
        if edge is not None and handoff is None:
            handoff = edge
            texts[index] = f"Transferred to {edge.target}."
        elif edge is not None:
            texts[index] = f"Error: already handing off to {handoff.target}; one hand-off per turn."  # type: ignore[union-attr]
        elif name in tools:
            pending[index] = _call_tool(run, agent, tools[name], call)
        else:
            texts[index] = _unknown(name, agent, tools, exits)
    if len(pending) == 1:
        index, job = pending.popitem()
        texts[index] = await job
    elif pending:
        done = await asyncio.gather(*pending.values())
        for index, result in zip(pending, done, strict=True):
            texts[index] = result
    for call, text in zip(calls, texts, strict=True):
        run.append({"role": "tool", "tool_call_id": call["id"], "content": text})
    return handoff


async def _call_tool(run: Run, agent: Agent, tool: Tool, call: Message) -> str:
    arguments = str(call["function"].get("arguments") or "")
    observed = run.hooks.wants("tool_start") or run.hooks.wants("tool_end")
    if observed:
        start = ToolEvent(run.run_id, run.step, agent.name, tool.name, call["id"], arguments)
        await run.hooks.emit("tool_start", start)
    failed = True
    try:
        text = await tool.call(arguments, run.ctx)
        failed = False
    except ToolArgumentsError as exc:
        text = f"Error: {exc}. Call the tool again with arguments that fit its schema."
    except Exception as exc:
        text = f"Error: tool {tool.name!r} raised {type(exc).__name__}: {exc}"
    if observed:
        end = ToolEvent(
            run.run_id,
            run.step,
            agent.name,
            tool.name,
            call["id"],
            arguments,
            result=text,
            failed=failed,
        )
        await run.hooks.emit("tool_end", end)
    return text


def _unknown(name: str, agent: Agent, tools: dict[str, Tool], exits: Exits) -> str:
    transfers = ", ".join(edge.transfer_name for edge in exits.llm) or "none"
    if name.startswith("transfer_to_"):
        return (
            f"Error: no hand-off from {agent.name} to {name[len('transfer_to_') :]!r} is "
            f"declared. The hand-offs you can use: {transfers}."
        )
    known = ", ".join(tools) or "none"
    return f"Error: there is no tool {name!r}. Your tools: {known}; hand-offs: {transfers}."
