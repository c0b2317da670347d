"""An agent's visit: the tool loop, as openai-node's ``runTools``.

Request a completion; answer every tool call it makes (concurrently), sending
bad arguments, unknown tools and exceptions back to the model as tool messages;
run the ``after_completion`` hooks; repeat until the model answers without tool
calls, hands off, or the agent's ``max_turns`` is reached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

from flowgraph._callables import call_inline
from flowgraph._edges import NO_EXITS, TRANSFER_PREFIX, Edge, Exits
from flowgraph._errors import RunError
from flowgraph._hooks import ToolEvent
from flowgraph._messages import Message
from flowgraph._tools import Tool, ToolArgumentsError

if TYPE_CHECKING:
    from flowgraph._nodes import Agent
    from flowgraph._run import Run, Visit

EMPTY_REPLY = "Your last reply was empty. {}"


async def run_agent(run: Run, agent: Agent) -> Visit:
    """One visit of ``agent`` as a node: its tool loop on the run's conversation,
    with its hand-offs offered as transfer tools and the after_completion hooks."""
    exits = run.plan.exits.get(agent.name, NO_EXITS)
    return await _Loop(run, agent, run.messages, exits, agent.name, hooks=True).loop()


async def agent_turn(run: Run, agent: Agent, messages: list[Message], node: str) -> str | None:
    """The agent's tool loop on ``messages`` (a nested chat's), with no hand-offs and
    no hooks; usage counts for ``node``. Returns the agent's last text."""
    visit = await _Loop(run, agent, messages, NO_EXITS, node, hooks=False).loop()
    return visit.output  # type: ignore[no-any-return]


class _Loop:
    """One tool loop: an agent, the messages it reads and extends, the exits it may take."""

    def __init__(
        self,
        run: Run,
        agent: Agent,
        messages: list[Message],
        exits: Exits,
        node: str,
        *,
        hooks: bool,
    ) -> None:
        self.run, self.agent, self.messages, self.exits = run, agent, messages, exits
        self.node, self.hooks = node, hooks
        self.tools, self.schemas = run.plan.toolset(agent, exits)

    async def loop(self) -> Visit:
        from flowgraph._run import Visit

        output: str | None = None
        handoff: Edge | None = None
        for _ in range(self.agent.max_turns):
            message = await self._request()
            calls = message.get("tool_calls")
            content = message.get("content")
            if content:
                output = content
            if calls:
                handoff = await self._answer(calls)
            elif not content:
                self.messages.append({"role": "system", "content": self._nudge()})
            if self.hooks:
                await self.run.after_completion(self.agent, message)
            if handoff is not None or (content and not calls):
                break
        else:
            self.run.note(f"agent {self.agent.name!r} reached max_turns={self.agent.max_turns}")
        return Visit(output=output, handoff=handoff)

    def _nudge(self) -> str:
        ways = ["answer the conversation"]
        if self.tools:
            ways.append("call one of your tools")
        if self.exits.llm:
            ways.append("hand off with a transfer tool")
        options = ", ".join(ways[:-1]) + f" or {ways[-1]}" if len(ways) > 1 else ways[0]
        return EMPTY_REPLY.format(options[0].upper() + options[1:] + ".")

    async def _request(self) -> Message:
        agent = self.agent
        try:
            system: str = await call_inline(agent.system_prompt, self.run.ctx)
        except Exception as exc:
            raise RunError(
                f"the instructions of agent {agent.name!r} raised {type(exc).__name__}: {exc}",
                node=self.node,
            ) from exc
        # An empty system message is refused by strict providers: leave it out.
        messages = (
            [{"role": "system", "content": system}, *self.messages] if system else self.messages
        )
        completion = await self.run.complete(
            self.node, messages, model=self.run.model_of(self.agent), tools=self.schemas
        )
        message = completion.message
        if message.get("content") or message.get("tool_calls"):
            message["name"] = agent.name
            self.messages.append(message)
        return message

    async def _answer(self, calls: Sequence[Message]) -> Edge | None:
        """Answer each tool call with exactly one tool message, in the calls' order."""
        handoff: Edge | None = None
        texts: list[str | None] = [None] * len(calls)
        pending: dict[int, Awaitable[str]] = {}
        for index, call in enumerate(calls):
            name = call["function"]["name"]
            edge = self.exits.transfer(name)
            if edge is not None and handoff is None:
                handoff = edge
                texts[index] = f"Transferred to {edge.target}."
            elif edge is not None and handoff is not None:
                texts[index] = (
                    f"Error: already handing off to {handoff.target}; one hand-off per turn."
                )
            elif name in self.tools:
                pending[index] = self._call_tool(self.tools[name], call)
            else:
                texts[index] = self._unknown(name)
        if len(pending) == 1:
            index, job = pending.popitem()
            texts[index] = await job
        elif pending:
            done = await asyncio.gather(*pending.values())
            for index, result in zip(pending, done, strict=True):
                texts[index] = result
        for call, text in zip(calls, texts, strict=True):
            self.messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
        return handoff

    async def _call_tool(self, tool: Tool, call: Message) -> str:
        run = self.run
        arguments = str(call["function"].get("arguments") or "")
        observed = run.hooks.wants("tool_start") or run.hooks.wants("tool_end")
        if observed:
            start = ToolEvent(run.run_id, run.step, self.node, tool.name, call["id"], arguments)
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
                self.node,
                tool.name,
                call["id"],
                arguments,
                result=text,
                failed=failed,
            )
            await run.hooks.emit("tool_end", end)
        return text

    def _unknown(self, name: str) -> str:
        transfers = ", ".join(edge.transfer_name for edge in self.exits.llm) or "none"
        if name.startswith(TRANSFER_PREFIX):
            return (
                f"Error: no hand-off from {self.agent.name} to {name[len(TRANSFER_PREFIX) :]!r} is "
                f"declared. The hand-offs you can use: {transfers}."
            )
        known = ", ".join(self.tools) or "none"
        return f"Error: there is no tool {name!r}. Your tools: {known}; hand-offs: {transfers}."
