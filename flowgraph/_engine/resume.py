"""A stored run brought back: the run rebuilt from its folded commits, and the logs
of a sub-flow that was running inside it when it stopped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from flowgraph._base.result import ChatResult, StepRecord
from flowgraph._engine.encode import load_context
from flowgraph._engine.run import Run
from flowgraph._graph.plan import Plan
from flowgraph._store.records import Commit, usage_of


def restore_logs(
    run: Run, path: Sequence[str], trace: Sequence[Any], chats: Sequence[Any], notes: Sequence[str]
) -> None:
    """Give ``run`` (a resumed run, or a sub-flow resumed inside it) the path, trace,
    chats and notes it had made, as stored."""
    run.path.extend(path)
    run.trace.extend(StepRecord.model_validate(record) for record in trace)
    run.chats.extend(ChatResult.model_validate(chat) for chat in chats)
    run.notes.extend(notes)


def restore(plan: Plan, snapshot: Commit, max_steps: int) -> Run:
    """A run rebuilt from its folded commits, ready to go on from its positions."""
    context = load_context(snapshot.context, snapshot.context_type)
    run = Run(plan, list(snapshot.messages), context, snapshot.run_id, max_steps)
    run.step = snapshot.step
    restore_logs(run, snapshot.path, snapshot.trace, snapshot.chats, snapshot.notes)
    run.usage.add(usage_of(snapshot.usage))
    run.usage_by_node.update({name: usage_of(u) for name, u in snapshot.usage_by_node.items()})
    run.output = snapshot.output
    run.replies.update(snapshot.replies)
    run.resume = [replace(position) for position in snapshot.positions]
    run.inner_logs = snapshot.inner
    return run
