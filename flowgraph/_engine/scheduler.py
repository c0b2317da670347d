"""The step loop: visit a node, run its exit hooks, take an edge, until END or no edge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from flowgraph._base.callables import BOUNDED
from flowgraph._base.context import CURRENT_CALL, HOOK_FLOWS, CallKey, Usage
from flowgraph._base.errors import FlowValidationError, UsageError
from flowgraph._base.failures import MaxStepsExceeded, RunError
from flowgraph._base.result import RunResult, StepRecord
from flowgraph._engine.agent import run_agent
from flowgraph._engine.decide import decide
from flowgraph._engine.handed import visit_start
from flowgraph._engine.nested import run_nested_chats
from flowgraph._engine.resume import restore_logs
from flowgraph._engine.run import Pause, Run, Visit
from flowgraph._engine.steps import ask_human, run_tool_step
from flowgraph._graph.edges import Edge
from flowgraph._graph.hooks import ErrorEvent, HandoffEvent, NodeEvent
from flowgraph._graph.human import Human
from flowgraph._graph.nested import NestedChat
from flowgraph._graph.nodes import END, START, Agent, Node, ToolStep
from flowgraph._graph.subflow import SubFlow
from flowgraph._store.records import Position, usage_of

Visitor = Callable[[Run, Any], Awaitable[Visit]]


async def execute(run: Run) -> RunResult:
    """Walk the graph from START, or from where a resumed run stood. Raises
    ``RunError`` carrying the run so far; a pause returns a ``waiting`` result.

    A deadline bounds whatever the run waits on: a request, a tool, a predicate, a
    hook. At the deadline the walk is cancelled where it waits (a sync function's
    thread runs on, abandoned) and the run fails at its last commit."""
    if run.parent is None and (flows := HOOK_FLOWS.get()) is not None:
        # Run by a hook: the hook's step records it. Flows this run runs are its own.
        flows.append(run.flow)
        token = HOOK_FLOWS.set(None)
        try:
            return await _bounded(run)
        finally:
            HOOK_FLOWS.reset(token)
    return await _bounded(run)


async def _bounded(run: Run) -> RunResult:
    """``_walk(run)``, within the run's deadline."""
    if run.deadline is None or run.parent is not None:
        return await _walk(run)
    token = BOUNDED.set(True)  # the walk's task copies it
    try:
        return await asyncio.wait_for(_walk(run), max(0.0, run.deadline - time.monotonic()))
    except (asyncio.TimeoutError, TimeoutError):
        at = run.position.node if run.position is not None else START.name
        error = run.deadline_passed(at)
        await _failed(run, error, run.plan.nodes.get(at, START))
        raise error from None
    finally:
        BOUNDED.reset(token)


async def _walk(run: Run) -> RunResult:
    node: Node = START
    visit = Visit()
    try:
        at = run.resume.pop(0) if run.resume else None
        if at is not None:
            run.step = at.step
            node, visit = await _resume(run, at)
        elif run.parent is None:
            await run.checkpoint(Position(node=START.name, phase="exit", step=0))
        while True:
            edge = await _leave(run, node, visit)
            if edge is None:
                return await _end(run, node, _dead_end(run, node))
            if edge.target == END.name:
                return await _end(run, END, "reached END")
            node = run.plan.nodes[edge.target]
            # A model's decision is not made the same way twice: before a step whose
            # function sees the run (its idempotency key), it is made durable.
            keyed = edge.kind == "llm" and isinstance(node, ToolStep) and node.takes_context
            await run.checkpoint(
                Position(node=node.name, phase="next", step=run.step), durable=keyed
            )
            run.entry = (edge, len(run.messages))
            visit = await _step(run, node)
    except Pause as pause:
        if run.parent is not None:
            raise
        reason = f"waiting at {pause.waiting.node!r} for a reply to: {pause.waiting.prompt}"
        return await run.settle("waiting", reason, pause.waiting)
    except RunError as exc:
        if exc.result is None:  # this run's own error, not one of a flow run inside a node
            await _failed(run, exc, node)
            raise
        cause: Exception = exc
    except (FlowValidationError, UsageError):
        raise
    except Exception as exc:
        cause = exc
    error = RunError(
        f"{node.kind} {node.name!r} raised {type(cause).__name__}: {cause}", node=node.name
    )
    await _failed(run, error, node)
    raise error from cause


async def _resume(run: Run, at: Position) -> tuple[Node, Visit]:
    """Go on from a committed position: returns the node whose edges come next."""
    if at.node == START.name:
        return START, Visit()
    node = run.plan.nodes.get(at.node)
    if node is None:
        raise UsageError(
            f"the stored run {run.run_id} is at node {at.node!r}, which flow "
            f"{run.plan.flow.name!r} does not have: resume it with the flow it ran on"
        )
    if at.phase in ("next", "visit") and isinstance(node, Agent):
        run.entry = resumed_entry(run, node, at.phase)
    if at.phase == "next":
        return node, await _step(run, node)
    if at.phase == "visit":
        run.at = at
        return node, await _step(run, node, resumed=True)
    exits = run.plan.exits.get(node.name)
    handoff = exits.to(at.handoff) if exits and at.handoff else None
    visit = Visit(output=at.output, handoff=handoff)
    await _exit(run, node, visit, time.perf_counter(), run.usage.model_copy())
    return node, visit


def resumed_entry(run: Run, node: Agent, phase: str) -> tuple[Edge, int] | None:
    """The edge a resumed run had taken into ``node``, and where the conversation stood
    then (``run.entry``, which the agent's history policy reads): the edge from the node
    before it on the path; the conversation's length, less what the visit had added."""
    before = run.path[-2] if len(run.path) > 1 else START.name
    exits = run.plan.exits.get(before)
    edge = exits.to(node.name) if exits is not None else None
    if edge is None:
        return None
    return edge, len(run.messages) if phase == "next" else visit_start(run.messages, node.name)


async def _step(run: Run, node: Node, *, resumed: bool = False) -> Visit:
    run.check_deadline(node.name)
    if not resumed:
        if run.step >= run.max_steps:
            raise MaxStepsExceeded(
                f"the run made more than max_steps={run.max_steps} node visits (last: "
                f"{' -> '.join(run.path[-6:])}). If the loop is intended, raise it with "
                "run(..., max_steps=N) or Flow(..., max_steps=N)",
                node=node.name,
            )
        run.step += 1
        run.path.append(node.name)
    run.asked, run.out_of_turns = None, False
    run.ctx.node, run.ctx.step = node.name, run.step
    run.position = Position(node=node.name, phase="visit", step=run.step)
    hooks = run.hooks
    if hooks.wants("node_enter") and not resumed:
        await hooks.emit(
            "node_enter", NodeEvent(run.run_id, run.step, node.name, node.kind), run.note
        )
    if run.tap is not None:
        await run.tell("node_entered", kind=node.kind)
    started = time.perf_counter()
    usage_before = run.usage.model_copy()
    # A tool step may ask a human (ctx.interrupt); an agent's tool calls set their own key.
    token = CURRENT_CALL.set(CallKey(run.call_key(node.name)) if node.kind != "agent" else None)
    try:
        visit = await _visitor(node)(run, node)
    finally:
        CURRENT_CALL.reset(token)
        run.at = None
    await _exit(run, node, visit, started, usage_before)
    return visit


async def _exit(run: Run, node: Node, visit: Visit, started: float, usage_before: Usage) -> None:
    """The end of a visit: the node-exit hooks, the output, the step's record."""
    await run.after_completion(node, None)
    run.output = visit.output
    seconds = time.perf_counter() - started
    inner = visit.inner.trace if visit.inner is not None else []
    spent = run.usage - usage_before
    # Only what a step has: each field given costs a pydantic check, on every step.
    extras: dict[str, Any] = {}
    if run.asked is not None:
        extras["model"] = run.asked
    if run.hooked:
        extras["hooks"], run.hooked = run.hooked, []
    if run.out_of_turns:
        extras["max_turns_reached"] = True
    run.trace.append(
        StepRecord(
            step=run.step, node=node.name, seconds=seconds, usage=spent, inner=inner, **extras
        )
    )
    if run.hooks.wants("node_exit"):
        event = NodeEvent(run.run_id, run.step, node.name, node.kind, visit.output, seconds, spent)
        await run.hooks.emit("node_exit", event, run.note)
    if run.tap is not None:
        await run.tell(
            "node_exited", kind=node.kind, output=visit.output, seconds=seconds, usage=spent
        )


async def _end(run: Run, node: Node, reason: str) -> RunResult:
    run.position = Position(node=node.name, phase="exit", step=run.step)
    if run.parent is not None:
        return run.result("completed", reason)
    if run.soft_ends:  # it ended, but not as hoped: the reason says so, not only the notes
        reason = "; ".join([reason, *run.soft_ends])
    return await run.settle("completed", reason)


async def _leave(run: Run, node: Node, visit: Visit) -> Edge | None:
    exits = run.plan.exits.get(node.name)
    if exits is None:
        return None
    is_agent = node.kind == "agent"
    # A router request (LLM edges out of a non-agent) belongs to the step it decides.
    routed = bool(exits.llm) and not is_agent and node is not START
    before = run.usage.model_copy() if routed else None
    edge = await decide(run, node.name, exits, visit, is_agent=is_agent)
    if before is not None:
        run.trace[-1].usage.add(run.usage - before)
    if edge is None:
        return None
    if run.trace and node is not START:
        run.trace[-1].edge, run.trace[-1].next = edge.kind, edge.target
    if run.hooks.wants("handoff"):
        await run.hooks.emit(
            "handoff",
            HandoffEvent(run.run_id, run.step, edge.source, edge.target, edge.kind, edge.label),
            run.note,
        )
    if run.tap is not None:
        await run.tell(
            "handoff", source=edge.source, target=edge.target, edge=edge.kind, label=edge.label
        )
    return edge


def _dead_end(run: Run, node: Node) -> str:
    exits = run.plan.exits.get(node.name)
    if exits is None:
        return f"node {node.name!r} has no out-edges"
    return (
        f"no edge out of {node.name!r} was taken: no predicate held, no LLM condition "
        "was chosen, and it has no unconditional edge"
    )


async def _failed(run: Run, error: RunError, node: Node) -> None:
    if error.node is None and node is not START:
        error.node = node.name
    error.run_id, error.step = run.run_id, run.step
    if run.parent is None and run.journal is not None:
        try:
            error.result = await run.settle("failed", str(error))
        except Exception as exc:  # the store failing too must not hide the run's error
            error.result = run.result("failed", str(error))
            error.result.notes.append(f"the failure could not be committed: {exc}")
    else:
        error.result = run.result("failed", str(error))
    if run.hooks.wants("error"):
        event = ErrorEvent(run.run_id, run.step, error.node, error)
        await run.hooks.emit("error", event, error.result.notes.append)


async def run_subflow(run: Run, node: SubFlow) -> Visit:
    """Run the sub-flow's own graph on this run's conversation and context."""
    inherited = run.plan.flow.model or run.inherited_model
    child = Run(
        node.flow._compile(),
        run.messages,
        run.ctx.context,
        run.run_id,
        node.flow.max_steps,
        inherited_model=inherited,
        parent=run,
    )
    if run.resume:  # the parent was resumed inside this sub-flow: so is the child
        child.resume, run.resume = run.resume, []
        child.usage.add(usage_of(child.resume[0].usage or (0, 0, 0)))
        _restore_logs(child, run)
    run.child = child
    try:
        result = await execute(child)
    except Pause:
        raise  # the pause commits where the child stands: nothing to merge yet
    except BaseException:
        _merge(run, child, node.name)
        raise
    _merge(run, child, node.name)
    run.ctx.context = result.context
    return Visit(output=result.output, inner=result)


def _restore_logs(child: Run, run: Run) -> None:
    """Give a resumed sub-flow the path, trace, chats and notes it had made."""
    logs = run.root.inner_logs.pop(run.where(), {})
    restore_logs(
        child,
        logs.get("path", []),
        logs.get("trace", []),
        logs.get("chats", []),
        logs.get("notes", []),
    )


def _merge(run: Run, child: Run, name: str) -> None:
    run.child = None
    run.spend(name, child.usage)
    run.chats.extend(child.chats)
    run.notes.extend(f"{name}: {note}" for note in child.notes)


# One visit function per node kind: a new kind of node is declared in ``_graph`` (and
# listed in its validation's KINDS), and its visit is added here.
VISITS: dict[type[Node], Visitor] = {
    Agent: run_agent,
    ToolStep: run_tool_step,
    Human: ask_human,
    NestedChat: run_nested_chats,
    SubFlow: run_subflow,
}


def _visitor(node: Node) -> Visitor:
    """The visit function of ``node``'s kind (or of the nearest kind it subclasses)."""
    for kind in type(node).__mro__:
        visit = VISITS.get(kind)
        if visit is not None:
            return visit
    raise AssertionError(f"no visit for {type(node).__name__}: validation lets none through")
