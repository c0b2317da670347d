"""The journal of one run: turns the run's state into commits of what changed.

It remembers how much of each log (messages, path, trace, chats, notes) earlier
commits hold, and the context as last committed, so each commit carries only the
new entries: its size depends on the step, not on the length of the run.
"""

from __future__ import annotations

import importlib
import json
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from flowgraph._checkpoint import Checkpointer, Commit, Position, Waiting
from flowgraph._context import Usage
from flowgraph._errors import RunError, UsageError

if TYPE_CHECKING:
    from flowgraph._checkpoint import StoredStatus
    from flowgraph._plan import Plan
    from flowgraph._run import Run


class Journal:
    """Commits a root run's progress to ``store``."""

    def __init__(
        self,
        store: Checkpointer,
        *,
        seq: int = 0,
        counts: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0),
        context: str | None = None,
        parent: str | None = None,
        started: float | None = None,
    ) -> None:
        self.store = store
        self.seq = seq
        self.messages, self.path, self.trace, self.chats, self.notes = counts
        self.context = context
        self.parent = parent
        self.started = started or time.time()
        self.last: Commit | None = None

    @classmethod
    def following(cls, store: Checkpointer, snapshot: Commit) -> Journal:
        """The journal of a resumed run: it goes on after the stored commits."""
        counts = (
            len(snapshot.messages),
            len(snapshot.path),
            len(snapshot.trace),
            len(snapshot.chats),
            len(snapshot.notes),
        )
        journal = cls(
            store,
            seq=snapshot.seq,
            counts=counts,
            context=snapshot.context,
            parent=snapshot.parent,
            started=snapshot.started,
        )
        journal.last = snapshot
        return journal

    def commit(
        self,
        run: Run,
        positions: list[Position],
        status: StoredStatus,
        reason: str = "",
        waiting: Waiting | None = None,
    ) -> Commit:
        """Commit what changed in ``run`` since the last commit; return the commit."""
        context, context_type = dump_context(run.ctx.context, run.run_id)
        self.seq += 1
        commit = Commit(
            run_id=run.run_id,
            flow=run.plan.flow.name,
            seq=self.seq,
            status=status,
            reason=reason,
            step=run.step,
            positions=positions,
            messages_from=self.messages,
            messages=run.messages[self.messages :],
            usage=run.usage.model_copy(),
            usage_by_node={name: usage.model_copy() for name, usage in run.usage_by_node.items()},
            context=None if context == self.context else context,
            context_type=context_type,
            path=run.path[self.path :],
            trace=[record.model_dump(mode="json") for record in run.trace[self.trace :]],
            chats=[chat.model_dump(mode="json") for chat in run.chats[self.chats :]],
            notes=run.notes[self.notes :],
            output=jsonable(run.output),
            replies=dict(run.replies),
            waiting=waiting,
            parent=self.parent,
            started=self.started,
        )
        self.messages, self.path = len(run.messages), len(run.path)
        self.trace, self.chats, self.notes = len(run.trace), len(run.chats), len(run.notes)
        self.context = context
        self.store.commit(commit)
        self.last = commit
        return commit

    def mark(self, run: Run, status: StoredStatus, reason: str) -> None:
        """Commit a new status over the last commit, and nothing else: what the run did
        since then is left out, so resuming goes on from a consistent point."""
        if self.last is None:
            self.commit(run, run.positions(), status, reason)
            return
        self.seq += 1
        commit = replace(
            self.last,
            seq=self.seq,
            status=status,
            reason=reason,
            messages_from=self.messages,
            messages=[],
            context=None,
            path=[],
            trace=[],
            chats=[],
            notes=[],
            waiting=None,
            created=time.time(),
        )
        self.store.commit(commit)
        self.last = commit


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: pydantic models and the like converted, anything else
    as its text (a node's output is kept for show, not computed with)."""
    return to_jsonable_python(value, fallback=str)


def dump_context(context: Any, run_id: str) -> tuple[str, str | None]:
    """The context variables as JSON text, and the pydantic model's import path."""
    if isinstance(context, BaseModel):
        kind = type(context)
        return context.model_dump_json(), f"{kind.__module__}:{kind.__qualname__}"
    try:
        return json.dumps(context, separators=(",", ":"), ensure_ascii=False), None
    except (TypeError, ValueError) as exc:
        raise RunError(
            f"run {run_id}: the context variables cannot be stored as JSON "
            f"({_offender(context) or exc}). Keep JSON values in them (str, int, float, bool, "
            "None, lists, dicts) or make the context a pydantic model",
        ) from exc


def _offender(context: Any) -> str | None:
    if isinstance(context, dict):
        for key, value in context.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                return f"{key!r} holds a value of type {type(value).__name__}"
    return None


def load_context(text: str | None, kind: str | None) -> Any:
    """The context variables back from ``dump_context``'s text."""
    if text is None:
        return {}
    if kind is None:
        return json.loads(text)
    module, _, qualname = kind.partition(":")
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise RunError(
            f"the run's context is a {kind}, which cannot be imported here ({exc}); resume "
            "where that class can be imported"
        ) from exc
    if not (isinstance(target, type) and issubclass(target, BaseModel)):
        raise RunError(f"the stored context type {kind} is not a pydantic model")
    return target.model_validate_json(text)


def restore(plan: Plan, snapshot: Commit, max_steps: int) -> Run:
    """A run rebuilt from its folded commits, ready to go on from its positions."""
    from flowgraph._nested import ChatResult
    from flowgraph._result import StepRecord
    from flowgraph._run import Run

    context = load_context(snapshot.context, snapshot.context_type)
    run = Run(plan, list(snapshot.messages), context, snapshot.run_id, max_steps)
    run.step = snapshot.step
    run.path.extend(snapshot.path)
    run.trace.extend(StepRecord.model_validate(record) for record in snapshot.trace)
    run.chats.extend(ChatResult.model_validate(chat) for chat in snapshot.chats)
    run.notes.extend(snapshot.notes)
    run.usage.add(snapshot.usage)
    run.usage_by_node.update({name: u.model_copy() for name, u in snapshot.usage_by_node.items()})
    run.output = snapshot.output
    run.replies.update(snapshot.replies)
    run.resume = [position.model_copy() for position in snapshot.positions]
    return run


async def fork_run(
    store: Checkpointer, flow: str, run_id: str, step: int, context: Any = None
) -> str:
    """Copy ``run_id`` as it stood after ``step`` into a new run; return the new id."""
    snapshot = await store.load(run_id, step=step)
    if snapshot is None:
        raise UsageError(
            f"run {run_id!r} has no committed step {step} to fork from in {store!r} "
            "(flow.runs(store) lists the runs; result.trace numbers the steps)"
        )
    if snapshot.flow != flow:
        raise UsageError(f"run {run_id!r} belongs to flow {snapshot.flow!r}, not {flow!r}")
    fork = replace(
        snapshot,
        run_id=uuid.uuid4().hex,
        seq=1,
        status="running",
        reason=f"forked from {run_id} after step {step}",
        replies={},
        waiting=None,
        parent=run_id,
        started=time.time(),
        created=time.time(),
        usage=Usage.model_validate(snapshot.usage.model_dump()),
    )
    if context is not None:
        fork.context, fork.context_type = dump_context(context, fork.run_id)
    store.commit(fork)
    await store.flush()
    return fork.run_id
