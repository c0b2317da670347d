"""The journal of one run: turns the run's state into commits of what changed.

It remembers how much of each log (messages, path, trace, chats, notes) earlier
commits hold, and the context as last committed, so each commit carries only the
new entries: its size depends on the step, not on the length of the run.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from typing import Any, NamedTuple, cast

from flowgraph._base.callables import implements
from flowgraph._base.errors import UsageError
from flowgraph._base.result import Waiting
from flowgraph._engine.encode import dump_context, jsonable
from flowgraph._engine.state import RunState
from flowgraph._store.protocol import Checkpointer, FailsRuns, StepStore
from flowgraph._store.records import (
    Commit,
    Position,
    Spent,
    Step,
    StoredStatus,
    UnstorableStep,
    commit_of,
    spent,
    step_of,
)

LOGS = ("path", "trace", "chats", "notes")  # a sub-flow's logs, as Commit.inner names them
BATCH = 64  # plain steps a journal holds before it hands them to the store at once


class Last(NamedTuple):
    """What a commit left the run at, for ``mark`` to repeat: its step record, and the
    two rare fields ``mark`` repeats too."""

    step: Step
    context_type: str | None = None
    replies: dict[str, Any] = {}  # noqa: RUF012 (never changed: a commit copies replies)


class Journal:
    """Commits a root run's progress to ``store``.

    ``store`` is a ``StepStore`` (``as_step_store`` makes any Checkpointer one). Plain
    steps are handed to it in batches: the journal holds up to ``BATCH`` of them, each
    a ``Step`` record, and a store such as SQLite encodes a batch in one go. The
    instructions are the same as for a step at a time, but the time is not: made one
    at a time, between steps that ran the rest of flowgraph, the encoding, the
    records and the buffer's lock ran with cold caches; a batch runs them warmer
    (measured: the store's overhead on a 1,000-step run of instant steps went from
    20-23% to 16-17%; 64 steps a batch cost less per step than 16, 32 or 128). The
    writer takes the steps a journal holds whenever it writes (``hand_over`` from its
    thread, see ``announce``), so holding them does not delay their reaching the disk.
    """

    def __init__(
        self,
        store: StepStore,
        run_id: str,
        flow: str,
        *,
        seq: int = 0,
        counts: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0),
        context: str | None = None,
        parent: str | None = None,
        started: float | None = None,
    ) -> None:
        self.store = store
        self.run_id, self.flow = run_id, flow
        self.seq = self._began = seq
        self.messages, self.path, self.trace, self.chats, self.notes = counts
        self.context = context
        self.parent = parent
        self.started = started or time.time()
        self.last: Last | None = None  # what the last commit left the run at
        self.committed = time.monotonic()  # when the last commit was made
        self.held: list[Step] = []  # plain steps not yet handed to the store
        self.announced = False  # the store knows this journal holds steps
        self.failure: Exception | None = None  # the store could not take a batch
        # What the last commit the store took left the run at: ``last``, and the
        # messages committed (a failed run's mark goes back to it).
        self._stored: tuple[Last | None, int] = (None, self.messages)
        self._taking = threading.Lock()  # the event loop's thread and the writer's take
        # Entries of each running sub-flow's logs committed, by where it runs.
        self.inner: dict[str, tuple[int, ...]] = {}
        self._usage: Spent | None = None  # the run's usage as last committed

    @classmethod
    def following(cls, store: StepStore, snapshot: Commit) -> Journal:
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
            snapshot.run_id,
            snapshot.flow,
            seq=snapshot.seq,
            counts=counts,
            context=snapshot.context,
            parent=snapshot.parent,
            started=snapshot.started,
        )
        journal.last = Last(step_of(snapshot), snapshot.context_type, snapshot.replies)
        journal._stored = (journal.last, journal.messages)
        journal.inner = {
            where: tuple(len(logs.get(name, ())) for name in LOGS)
            for where, logs in snapshot.inner.items()
        }
        return journal

    def commit(
        self,
        run: RunState,
        positions: list[Position],
        status: StoredStatus,
        reason: str = "",
        waiting: Waiting | None = None,
    ) -> None:
        """Commit what changed in ``run`` since the last commit.

        Most commits are plain steps: running, with no reason, no new chats or notes,
        no sub-flow, no replies, and a context that is not a pydantic model: those are
        ``Step`` records, handed to the store in batches (see the class's notes). The
        others are handed to it as a ``Commit`` each, after the steps held.
        """
        if self.failure is not None:  # the store's writer could not take held steps
            raise self.failure
        text, context_type = dump_context(run.ctx.context, run.run_id)
        context = None if text == self.context else text  # None: unchanged
        self.context = text
        self.seq += 1
        usage = self._usage
        by_node: dict[str, Spent] = {}
        if usage is None or run.usage_grew:  # most commits follow a tool: nothing spent
            usage, by_node = self._usage_change(run)
        inner: dict[str, dict[str, list[Any]]] = {}
        if run.child is not None:
            positions, inner = self._sub_flows(run, positions)
        # Positional, in the fields' order: a call by keyword costs twice as much, and
        # there is one per commit.
        step = Step(
            self.seq,  # seq
            run.step,  # step
            positions,
            self.messages,  # messages_from
            run.messages[self.messages :],  # messages
            usage,
            by_node,  # usage_by_node
            run.path[self.path :],  # path
            context,
            run.trace[self.trace :],  # trace
            jsonable(run.output),  # output
        )
        if (
            status == "running"
            and not (reason or inner or context_type or run.replies or waiting)
            and len(run.chats) == self.chats
            and len(run.notes) == self.notes
        ):  # a plain step: most commits
            self.last = Last(step)
            self._hold(step)
        else:
            self.hand_over()  # the steps held come first
            self._commit_whole(run, step, status, reason, waiting, inner, context_type)
        self.messages, self.path, self.trace = len(run.messages), len(run.path), len(run.trace)
        self.committed = time.monotonic()

    def _hold(self, step: Step) -> None:
        """Keep a plain step for the store's next batch."""
        held = self.held
        held.append(step)
        if len(held) >= BATCH:
            self.hand_over()
        elif not self.announced:
            self.announced = True
            self.store.announce(self)

    def _commit_whole(
        self,
        run: RunState,
        step: Step,
        status: StoredStatus,
        reason: str,
        waiting: Waiting | None,
        inner: dict[str, dict[str, list[Any]]],
        context_type: str | None,
    ) -> None:
        """Commit a step that is not plain as a whole ``Commit``, now, with its rare
        fields: new chats and notes, sub-flow entries, replies, what it waits for."""
        replies = dict(run.replies) if run.replies else {}
        rare = {
            "chats": run.chats[self.chats :],
            "notes": run.notes[self.notes :],
            "inner": inner,
            "context_type": context_type,
            "replies": replies,
            "waiting": waiting,
        }
        whole = step._replace(extra=rare, status=status, reason=reason)
        commit = commit_of(self.run_id, self.flow, self.parent, self.started, whole)
        self.store.commit(commit)  # if it fails, the run is still at the last stored
        self.last = Last(step, context_type, replies)
        self._stored = (self.last, step.messages_from + len(step.messages))
        self.chats += len(commit.chats)
        self.notes += len(commit.notes)

    async def flush(self) -> None:
        """Wait until the store has written the run's commits; raise if it could not."""
        await self.store.flush()
        if implements(self.store, FailsRuns):
            failure = cast(FailsRuns, self.store).take_failure(self.run_id)
            if failure is not None:
                raise failure

    def hand_over(self) -> None:
        """Hand the steps held to the store, in one batch. From the event loop's thread
        (at ``BATCH`` steps, and before any other commit) or the store's writer (when it
        writes: see ``SQLiteCheckpointer.announce``)."""
        with self._taking:
            self.announced = False  # before taking: a step held after it announces anew
            held = self.held
            count = len(held)
            if not count:
                return
            batch = held[:count]
            del held[:count]  # the loop's thread may be appending: only these go
            try:
                self.store.commit_steps(self.run_id, self.flow, self.parent, self.started, batch)
            except UnstorableStep as failure:  # the steps before it were stored
                self.failure = failure
                stored = [step for step in batch if step.seq < failure.seq]
                if stored:
                    self._stored = _stored(stored[-1])
                raise
            self._stored = _stored(batch[-1])

    def _sub_flows(
        self, run: RunState, positions: list[Position]
    ) -> tuple[list[Position], dict[str, dict[str, list[Any]]]]:
        """The positions with each running sub-flow's usage, and what the sub-flows
        appended to their logs (a sub-flow's usage and logs join its parent's only
        when it ends)."""
        entries: dict[str, dict[str, list[Any]]] = {}
        counts: dict[str, tuple[int, ...]] = {}
        placed = positions[:1]
        child, depth = run.child, 1
        while child is not None and depth < len(positions):
            where = child.parent.where() if child.parent is not None else ""
            placed.append(replace(positions[depth], usage=spent(child.usage)))
            logs: tuple[list[Any], ...] = (child.path, child.trace, child.chats, child.notes)
            done = self.inner.get(where, (0, 0, 0, 0))
            new = {
                name: items[start:]
                for name, items, start in zip(LOGS, logs, done, strict=True)
                if len(items) > start
            }
            if new:
                entries[where] = new
            counts[where] = tuple(len(items) for items in logs)
            child, depth = child.child, depth + 1
        self.inner = counts  # only the sub-flows running now: the others have ended
        return placed + positions[depth:], entries

    def _usage_change(self, run: RunState) -> tuple[Spent, dict[str, Spent]]:
        """The run's usage, and that of the nodes that spent since the last commit
        (every node's at the journal's first commit)."""
        grew, nodes = run.usage_grew, run.usage_by_node
        if self._usage is None:
            grew.update(nodes)
        self._usage = usage = spent(run.usage)
        changed = {}
        for name in grew:  # most often one node: a loop costs less than a comprehension
            changed[name] = spent(nodes[name])
        grew.clear()
        return usage, changed

    def mark(self, run: RunState, status: StoredStatus, reason: str) -> None:
        """Commit a new status over the last commit, and nothing else: what the run did
        since then is left out, so resuming goes on from a consistent point. After a
        step the store could not take, that is the last commit it took."""
        if self.failure is not None:
            with self._taking:
                self.held.clear()  # steps after the one that failed: they would leave a gap
            self.last, self.messages = self._stored
            # The mark follows the last commit stored: a store checks for gaps.
            self.seq = self.last.step.seq if self.last is not None else self._began
        if self.last is None:
            self.commit(run, run.positions(), status, reason)
            return
        last, at = self.last, self.last.step
        self.hand_over()
        self.seq += 1
        self.store.commit(
            Commit(
                run_id=run.run_id,
                flow=self.flow,
                seq=self.seq,
                status=status,
                reason=reason,
                step=at.step,
                positions=at.positions,
                messages_from=self.messages,
                messages=[],
                usage=at.usage,
                usage_by_node={},
                context_type=last.context_type,
                output=at.output,
                replies=last.replies,
                parent=self.parent,
                started=self.started,
            )
        )


def _stored(step: Step) -> tuple[Last, int]:
    """What a plain step handed to the store left the run at, and its messages."""
    return Last(step), step.messages_from + len(step.messages)


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
    )
    if context is not None:
        fork.context, fork.context_type = dump_context(context, fork.run_id)
    store.commit(fork)
    await store.flush()
    return fork.run_id
