"""An agent's visit: the tool loop, as openai-node's ``runTools``.

Request a completion; answer every tool call it makes (concurrently), sending
bad arguments, unknown tools and exceptions back to the model as tool messages;
run the ``after_completion`` hooks; repeat until the model answers without tool
calls, hands off, or the agent's ``max_turns`` is reached.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypeVar

from flowgraph._base.callables import call_inline
from flowgraph._base.context import CURRENT_CALL, CallKey
from flowgraph._base.failures import MaxTurnsExceeded, RunError
from flowgraph._base.messages import CallIds, HistoryCheck, Message
from flowgraph._base.retry import NO_RETRY, retrying_on_named
from flowgraph._engine.decide import offered as offered_now
from flowgraph._engine.handed import seen
from flowgraph._engine.run import Run, Visit
from flowgraph._graph.edges import NO_EXITS, TRANSFER_PREFIX, Edge, Exits, Handoff, transfer_tool
from flowgraph._graph.hooks import ToolEvent
from flowgraph._graph.nodes import Agent, forced_tool
from flowgraph._graph.tools import Tool, ToolArgumentsError
from flowgraph._store.records import Position

EMPTY_REPLY = "Your last reply was empty. {}"
YES = frozenset({"y", "yes", "ok", "okay", "approve", "approved", "allow", "true", "1"})
T = TypeVar("T")


class ToolTimeout(Exception):
    """A tool call took longer than its ``timeout``."""


class UndeclaredHandoff(Exception):
    """A tool's ``Handoff`` names a node no edge of the agent leads to: its message is
    the tool's answer, for the model."""


def approves(reply: Any) -> bool:
    """Whether a human's reply to an approval approves: True, or a yes-like word."""
    if isinstance(reply, bool):
        return reply
    return isinstance(reply, str) and reply.strip().lower().rstrip(".!") in YES


async def gather_or_cancel(jobs: Iterable[Awaitable[T]]) -> list[T]:
    """Await the jobs concurrently; if one raises (or the run pauses), cancel the rest
    and wait for them, so no task outlives the call."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _parallel(agent: Agent, model: Any) -> bool:
    """Whether a turn's calls run at once: as the agent says, else the model's setting
    (``parallel_tool_calls=False``), else yes."""
    if agent.parallel_tool_calls is not None:
        return agent.parallel_tool_calls
    return getattr(model, "settings", {}).get("parallel_tool_calls") is not False


async def run_agent(run: Run, agent: Agent) -> Visit:
    """One visit of ``agent`` as a node: its tool loop on the run's conversation,
    with its hand-offs offered as transfer tools and the after_completion hooks."""
    exits = run.plan.exits.get(agent.name, NO_EXITS)
    return await _Loop(run, agent, run.messages, exits, agent.name, as_node=True).loop()


async def agent_turn(run: Run, agent: Agent, messages: list[Message], node: str) -> str | None:
    """The agent's tool loop on ``messages`` (a nested chat's), with no hand-offs and
    no hooks; usage counts for ``node``. Returns the agent's last text."""
    visit = await _Loop(run, agent, messages, NO_EXITS, node, as_node=False).loop()
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
        as_node: bool,
    ) -> None:
        self.run, self.agent, self.messages, self.exits = run, agent, messages, exits
        self.node, self.as_node = node, as_node
        self.inner = None if as_node else agent.name  # the agent, in a nested chat's path
        self.model = run.model_of(agent)
        self.parallel = _parallel(agent, self.model)
        # A tool_choice that names a tool: it is called once, and its result ends the visit.
        self.forced = agent.forced_tool or forced_tool(
            getattr(self.model, "settings", {}).get("tool_choice")
        )
        self.handoffs: dict[str, Edge] = {}  # by call id: the edges tools handed off by
        self.tool_handoff: Edge | None = None  # the one taken: it wins over predicates
        self.tools, self.schemas = run.plan.toolset(agent, exits)
        self.offered: set[str] | None = None  # the transfers offered now, if some may not be
        # The run's conversation is checked incrementally across visits; a nested
        # chat's is short and checked per turn.
        self.history = run.history if messages is run.messages else HistoryCheck()
        self.call_ids = run.call_ids if messages is run.messages else CallIds()

    async def loop(self) -> Visit:
        at = self.run.at if self.as_node else None
        if at is None and self.exits.before:  # AG2's OnContextCondition: no request
            for edge in self.exits.before:
                if await self._holds(edge):
                    return Visit(handoff=edge, decided=True)
        turn, output, handoff, pending = 0, None, None, False
        if at is not None:  # a resumed visit: go on from its last commit
            turn, output, pending = at.turn, at.output, at.pending
            handoff = self.exits.to(at.handoff) if at.handoff else None
        while turn < self.agent.max_turns:
            # A committed completion whose calls were never answered is answered first.
            message = self.messages[-1] if pending else await self._request()
            pending, turn = False, turn + 1
            calls = message.get("tool_calls")
            content = message.get("content")
            if content:
                output = content
            forced = False
            if calls:
                await self._commit(turn - 1, output, None, pending=True)
                handoff = await self._answer(calls)
                forced, output = self._forced_result(calls, output)
            elif not content:
                self.messages.append({"role": "system", "content": self._nudge()})
            if self.as_node:
                await self.run.after_completion(self.agent, message)
            done = handoff is not None or forced or bool(content and not calls)
            if calls:
                await self._commit(turn, output, handoff, done=done)
            if done:
                break
        else:
            self._out_of_turns()
        decided = handoff is not None and handoff is self.tool_handoff
        return Visit(output=output, handoff=handoff, decided=decided)

    async def _commit(
        self,
        turn: int,
        output: str | None,
        handoff: Edge | None,
        *,
        pending: bool = False,
        done: bool = False,
    ) -> None:
        """Commit the visit so far, if it took long enough to be worth it (see
        ``Run.checkpoint``). Before tool calls run, the commit is made and waited for
        if a called tool takes the run context: a resumed run then answers the same
        calls, with the same ``ctx.idempotency_key``. A tool without the context
        cannot key its side effects, so waiting for the disk would buy it nothing."""
        if not self.as_node:
            return  # a nested chat's turn: the node is re-run as a whole
        position = Position(
            node=self.node,
            phase="exit" if done else "visit",
            step=self.run.step,
            turn=turn,
            pending=pending,
            handoff=handoff.target if handoff is not None else None,
            output=output,
        )
        await self.run.checkpoint(position, durable=pending and self._keyed(), inside=True)

    def _keyed(self) -> bool:
        """Whether a tool called in the last completion takes the run context."""
        calls = self.messages[-1].get("tool_calls") or ()
        for call in calls:
            tool = self.tools.get(call["function"]["name"])
            if tool is not None and tool.takes_context:
                return True
        return False

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
        self.run.check_history(self.node, self.messages, self.history)
        history = self._seen()
        # An empty system message is refused by strict providers: leave it out.
        messages = [{"role": "system", "content": system}, *history] if system else history
        completion = await self.run.complete(
            self.node,
            messages,
            model=self.model,
            tools=await self._offer(),
            settings=self._settings(),
            retry=agent.retry,
            timeout=agent.request_timeout,
            checked=True,
            inner=self.inner,
        )
        message = completion.message
        if message.get("tool_calls"):
            self.call_ids.make_unique(message, self.messages)
        if message.get("content") or message.get("tool_calls"):
            message["name"] = agent.name
            self.messages.append(message)
        return message

    def _out_of_turns(self) -> None:
        """The agent made max_turns completions without a final answer: say so (a
        note, the step's record, the run's reason), or fail, as the flow chooses."""
        said = f"agent {self.agent.name!r} reached max_turns={self.agent.max_turns} without a "
        said += "final answer"
        if self.run.plan.flow.on_max_turns == "fail":
            raise MaxTurnsExceeded(
                f"{said} (the flow treats that as an error: on_max_turns='fail')", node=self.node
            )
        self.run.note(
            f"{said}; the run went on from its last turn (raise max_turns, or look at the "
            "tool calls it kept making)"
        )
        self.run.root.soft_ends.append(said)
        if self.as_node:
            self.run.out_of_turns = True

    def _seen(self) -> list[Message]:
        """The conversation as this agent sees it: as the edge it was handed by says
        (``history=``, else the flow's ``handoff_history``)."""
        entry = self.run.entry if self.as_node else None
        if entry is None:
            return self.messages
        edge, boundary = entry
        policy = edge.history or self.run.plan.flow.handoff_history
        return self.messages if policy == "full" else seen(self.messages, policy, edge, boundary)

    async def _holds(self, edge: Edge) -> bool:
        try:
            return bool(await call_inline(edge.when, self.run.ctx))  # type: ignore[arg-type]
        except Exception as exc:
            raise RunError(
                f"the predicate {edge.label!r} of {edge.describe()} raised "
                f"{type(exc).__name__}: {exc}",
                node=self.node,
            ) from exc

    async def _offer(self) -> list[dict[str, Any]]:
        """The schemas of this request: the agent's tools and the transfers offered now
        (some depend on the context: ``available=``, ``fg.ContextStr``)."""
        if not self.exits.dynamic:
            return self.schemas
        offered = [edge for edge in self.exits.llm if await offered_now(self.run, edge)]
        self.offered = {edge.transfer_name for edge in offered}
        context = self.run.ctx.context
        tools = [tool.openai_schema() for tool in self.agent.tools]
        return tools + [transfer_tool(edge, context) for edge in offered]

    def _forced_result(self, calls: Sequence[Message], output: Any) -> tuple[bool, Any]:
        """Whether the forced tool was called, and then the visit's output: its result."""
        if self.forced is None:
            return False, output
        ids = {call["id"] for call in calls if call["function"]["name"] == self.forced}
        answers = [m["content"] for m in self.messages if m.get("tool_call_id") in ids]
        return (True, answers[-1]) if answers else (False, output)

    def _settings(self) -> dict[str, Any] | None:
        """The agent's settings a request carries besides the model's own."""
        if not self.schemas:
            return None
        settings: dict[str, Any] = {}
        if self.agent.parallel_tool_calls is not None:
            settings["parallel_tool_calls"] = self.agent.parallel_tool_calls
        if self.agent.tool_choice is not None:
            settings["tool_choice"] = self.agent.tool_choice
        return settings or None

    async def _answer(self, calls: Sequence[Message]) -> Edge | None:
        """Answer each tool call with exactly one tool message, in the calls' order."""
        handoff: Edge | None = None
        transfer = -1  # the index of the model's transfer call taken, if any
        texts: list[str | None] = [None] * len(calls)
        pending: dict[int, tuple[Tool, Message]] = {}
        for index, call in enumerate(calls):
            name = call["function"]["name"]
            edge = self.exits.transfer(name)
            if edge is not None and self.offered is not None and name not in self.offered:
                texts[index] = f"Error: the hand-off {name} is not available now."
                continue
            if edge is not None and handoff is None:
                handoff, transfer = edge, index
                texts[index] = f"Transferred to {edge.target}."
            elif edge is not None and handoff is not None:
                texts[index] = (
                    f"Error: already handing off to {handoff.target}; one hand-off per turn."
                )
            elif name in self.tools:
                pending[index] = (self.tools[name], call)
            else:
                texts[index] = self._unknown(name)
        if len(pending) == 1 or not self.parallel:
            for index, (tool, call) in pending.items():  # one after another, in order
                texts[index] = await self._call_tool(tool, call)
        elif pending:
            # At once; tools that take the run context one at a time (the run's context
            # lock), so that no read-change-write of the context is lost.
            lock = self.run.root.context_lock
            jobs = [
                self._call_tool(tool, call, lock if tool.takes_context else None)
                for tool, call in pending.values()
            ]
            for index, result in zip(pending, await gather_or_cancel(jobs), strict=True):
                texts[index] = result
        handoff = self._tool_handoffs(calls, texts, handoff, transfer)
        for call, text in zip(calls, texts, strict=True):
            self.messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
        return handoff

    def _tool_handoffs(
        self, calls: Sequence[Message], texts: list[str | None], handoff: Edge | None, transfer: int
    ) -> Edge | None:
        """A tool's ``fg.Handoff`` wins over the model's transfer in the same turn (whose
        answer then says so); one hand-off a turn."""
        for index, call in enumerate(calls):
            edge = self.handoffs.pop(call["id"], None)
            if edge is None:
                continue
            if self.tool_handoff is not None:
                taken = self.tool_handoff.target
                texts[index] = f"Error: already handing off to {taken}; one hand-off per turn."
                continue
            if transfer >= 0:
                texts[transfer] = f"Error: a tool handed off to {edge.target} instead."
            handoff = self.tool_handoff = edge
        return handoff

    async def _call_tool(self, tool: Tool, call: Message, lock: asyncio.Lock | None = None) -> str:
        run = self.run
        arguments = str(call["function"].get("arguments") or "")
        observed = run.hooks.wants("tool_start") or run.hooks.wants("tool_end")
        if observed:
            start = ToolEvent(run.run_id, run.step, self.node, tool.name, call["id"], arguments)
            await run.hooks.emit("tool_start", start, run.note)
        if run.tap is not None:
            await run.tell(
                "tool_started",
                call_id=call["id"],
                tool=tool.name,
                arguments=arguments,
                inner=self.inner,
            )
        token = CURRENT_CALL.set(CallKey(run.call_key(call["id"]), can_pause=self.as_node))
        failed = True
        try:
            if lock is None:
                text = await self._run_tool(tool, arguments, call["id"])
            else:
                async with lock:
                    text = await self._run_tool(tool, arguments, call["id"])
            failed = False
        except ToolArgumentsError as exc:
            text = f"Error: {exc}. Call the tool again with arguments that fit its schema."
        except UndeclaredHandoff as exc:
            text = str(exc)
        except Exception as exc:
            text = f"Error: tool {tool.name!r} raised {type(exc).__name__}: {exc}"
        finally:
            CURRENT_CALL.reset(token)
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
            await run.hooks.emit("tool_end", end, run.note)
        if run.tap is not None:
            await run.tell(
                "tool_finished",
                call_id=call["id"],
                tool=tool.name,
                output=text,
                error=failed,
                inner=self.inner,
            )
        return text

    async def _run_tool(self, tool: Tool, arguments: str, call_id: str) -> str:
        """Validate the arguments, ask a human first if the tool says so, then run it.
        A ``Handoff`` it returns is kept for ``_answer`` (by ``call_id``), its message
        answering the call."""
        result = await self._invoke(tool, arguments)
        if not isinstance(result, Handoff):
            return result
        edge = self.exits.to(result.to)
        if edge is None:
            targets = ", ".join(repr(target) for target in self.exits.targets()) or "none"
            raise UndeclaredHandoff(
                f"Error: {tool.name} handed off to {result.to!r}, but no edge from "
                f"{self.agent.name!r} leads there; the nodes it can hand off to: {targets}."
            )
        self.handoffs[call_id] = edge
        return result.message or f"Transferred to {edge.target}."

    async def _invoke(self, tool: Tool, arguments: str) -> str | Handoff:
        kwargs = tool.validate(arguments)
        if tool.requires_approval:
            shown = json.dumps(kwargs, default=str, ensure_ascii=False)
            reply = self.run.interrupt(f"Approve the call {tool.name}({shown})?", "approval")
            if not approves(reply):
                return f"Error: a human did not approve this call of {tool.name} ({reply!r})."
        try:
            return await retrying_on_named(
                lambda: tool.invoke(kwargs, self.run.ctx), tool.retry, timeout=tool.timeout
            )
        except (TimeoutError, asyncio.TimeoutError) as exc:
            policy = tool.retry or NO_RETRY
            raise ToolTimeout(
                f"the call did not finish within {tool.timeout:g} s"
                + (f" ({policy.attempts} attempts)" if policy.attempts > 1 else "")
            ) from exc

    def _unknown(self, name: str) -> str:
        transfers = ", ".join(edge.transfer_name for edge in self.exits.llm) or "none"
        if name.startswith(TRANSFER_PREFIX):
            return (
                f"Error: no hand-off from {self.agent.name} to {name[len(TRANSFER_PREFIX) :]!r} is "
                f"declared. The hand-offs you can use: {transfers}."
            )
        known = ", ".join(self.tools) or "none"
        return f"Error: there is no tool {name!r}. Your tools: {known}; hand-offs: {transfers}."
