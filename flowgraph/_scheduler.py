"""The step loop: visit a node, run its exit hooks, take an edge, until END or no edge."""

from __future__ import annotations

import time

from flowgraph._edges import Edge, decide
from flowgraph._errors import FlowValidationError, MaxStepsExceeded, RunError, UsageError
from flowgraph._hooks import ErrorEvent, HandoffEvent, NodeEvent
from flowgraph._nodes import END, START, Node
from flowgraph._result import RunResult, StepRecord
from flowgraph._run import Run, Visit


async def execute(run: Run) -> RunResult:
    """Walk the graph from START. Raises ``RunError`` carrying the run so far."""
    node: Node = START
    visit = Visit()
    try:
        while True:
            edge = await _leave(run, node, visit)
            if edge is None:
                return run.result("completed", _dead_end(run, node))
            if edge.target == END.name:
                return run.result("completed", "reached END")
            node = run.plan.nodes[edge.target]
            visit = await _step(run, node)
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


async def _step(run: Run, node: Node) -> Visit:
    run.step += 1
    if run.step > run.max_steps:
        raise MaxStepsExceeded(
            f"the run made more than max_steps={run.max_steps} node visits (last: "
            f"{' -> '.join(run.path[-6:])}). If the loop is intended, raise it with "
            "run(..., max_steps=N) or Flow(..., max_steps=N)",
            node=node.name,
        )
    run.path.append(node.name)
    run.ctx.node, run.ctx.step = node.name, run.step
    hooks = run.hooks
    if hooks.wants("node_enter"):
        await hooks.emit("node_enter", NodeEvent(run.run_id, run.step, node.name, node.kind))
    started = time.perf_counter()
    usage_before = run.usage.model_copy()
    visit = await node.visit(run)
    await run.after_completion(node, None)
    run.output = visit.output
    seconds = time.perf_counter() - started
    inner = visit.inner.trace if visit.inner is not None else []
    spent = run.usage - usage_before
    run.trace.append(
        StepRecord(step=run.step, node=node.name, seconds=seconds, usage=spent, inner=inner)
    )
    if hooks.wants("node_exit"):
        event = NodeEvent(run.run_id, run.step, node.name, node.kind, visit.output, seconds, spent)
        await hooks.emit("node_exit", event)
    return visit


async def _leave(run: Run, node: Node, visit: Visit) -> Edge | None:
    exits = run.plan.exits.get(node.name)
    if exits is None:
        return None
    edge = await decide(run, node.name, exits, visit, is_agent=node.kind == "agent")
    if edge is None:
        return None
    if run.trace and node is not START:
        run.trace[-1].edge, run.trace[-1].next = edge.kind, edge.target
    if run.hooks.wants("handoff"):
        await run.hooks.emit(
            "handoff",
            HandoffEvent(run.run_id, run.step, edge.source, edge.target, edge.kind, edge.label),
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
    error.result = run.result("failed", str(error))
    error.run_id, error.step = run.run_id, run.step
    if run.hooks.wants("error"):
        try:
            await run.hooks.emit("error", ErrorEvent(run.run_id, run.step, error.node, error))
        except Exception as exc:  # an observer must not hide the run's own error
            error.result.notes.append(f"an on_error hook raised: {type(exc).__name__}: {exc}")
