"""A Flow as a node: a sub-flow runs its own graph on the same run context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowgraph._checkpoint import usage_of
from flowgraph._nodes import Node

if TYPE_CHECKING:
    from flowgraph._flow import Flow
    from flowgraph._run import Run, Visit


class SubFlow(Node):
    """A sub-flow in a parent flow. ``flow.edge(a, other_flow)`` makes one.

    The sub-flow runs from its START on the parent's conversation and context
    variables, with its own hooks and ``max_steps``; reaching its END (or a node with
    no edge to take) returns to the parent, whose edges then decide. Its usage counts
    in the parent run, and its steps are kept in the parent step's ``inner`` record.
    """

    kind = "flow"

    def __init__(self, flow: Flow) -> None:
        super().__init__(flow.name)
        self.flow = flow

    async def visit(self, run: Run) -> Visit:
        from flowgraph._run import Pause, Visit
        from flowgraph._run import Run as ChildRun
        from flowgraph._scheduler import execute

        inherited = run.plan.flow.model or run.inherited_model
        child = ChildRun(
            self.flow.plan(),
            run.messages,
            run.ctx.context,
            run.run_id,
            self.flow.max_steps,
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
            _merge(run, child, self.name)
            raise
        _merge(run, child, self.name)
        run.ctx.context = result.context
        return Visit(output=result.output, inner=result)


def _restore_logs(child: Run, run: Run) -> None:
    """Give a resumed sub-flow the path, trace, chats and notes it had made."""
    from flowgraph._journal import restore_logs

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
