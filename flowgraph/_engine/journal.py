"""The journal of one run: turns the run's state into commits of what changed.

It remembers how much of each log (messages, path, trace, chats, notes) earlier
commits hold, and the context as last committed, so each commit carries only the
new entries: its size depends on the step, not on the length of the run.
"""

from __future__ import annotations

import importlib
import json
import json.encoder
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from flowgraph._base.errors import UsageError
from flowgraph._base.failures import RunError
from flowgraph._base.result import Waiting
from flowgraph._store.checkpoint import (
    Checkpointer,
    Commit,
    Position,
    Spent,
    Step,
    StepStore,
    UnstorableStep,
    spent,
)

if TYPE_CHECKING:
    from flowgraph._engine.state import RunState
    from flowgraph._store.checkpoint import StoredStatus


LOGS = ("path", "trace", "chats", "notes")  # a sub-flow's logs, as Commit.inner names them
BATCH = 64  # plain steps a journal holds before it hands them to the store at once

# What a commit left the run at, for ``mark`` to repeat: its step, positions, usage,
# output, context type and replies.
Last = tuple[int, list[Position], Spent, Any, str | None, dict[str, Any]]


class Journal:
    """Commits a root run's progress to ``store``.

    A store with ``commit_steps`` (``SQLiteCheckpointer``) is handed plain steps in
    batches: the journal holds up to ``BATCH`` of them, each as the tuple of its
    fields, and the store encodes a batch in one go. The instructions are the same as
    for a step at a time, but the time is not: made one at a time, between steps that
    ran the rest of flowgraph, the encoding, the records and the buffer's lock ran
    with cold caches; a batch runs them warmer (measured: the store's overhead on a
    1,000-step run of instant steps went from 20-23% to 16-17%; 64 steps a batch cost
    less per step than 16, 32 or 128). The writer takes the steps a journal holds
    whenever it writes (``hand_over`` from its thread, see ``announce``), so holding
    them does not delay their reaching the disk.
    """

    def __init__(
        self,
        store: Checkpointer,
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
        self.seq = seq
        self.messages, self.path, self.trace, self.chats, self.notes = counts
        self.context = context
        self.parent = parent
        self.started = started or time.time()
        self.last: Last | None = None  # what the last commit left the run at
        self.committed = time.monotonic()  # when the last commit was made
        self._batches = store if isinstance(store, StepStore) else None
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
            snapshot.run_id,
            snapshot.flow,
            seq=snapshot.seq,
            counts=counts,
            context=snapshot.context,
            parent=snapshot.parent,
            started=snapshot.started,
        )
        journal.last = (
            snapshot.step,
            snapshot.positions,
            snapshot.usage,
            snapshot.output,
            snapshot.context_type,
            snapshot.replies,
        )
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
        no sub-flow, no replies, and a context that is not a pydantic model. A store
        that has ``commit_steps`` (``SQLiteCheckpointer``) is handed those in batches
        (see the class's notes); the others are handed a ``Commit`` each.
        """
        if self.failure is not None:  # the store's writer could not take held steps
            raise self.failure
        text, context_type = dump_context(run.ctx.context, run.run_id)
        context = None if text == self.context else text  # None: unchanged
        self.context = text
        self.seq += 1
        messages, path, trace, chats, notes = (
            run.messages,
            run.path,
            run.trace,
            run.chats,
            run.notes,
        )
        by_node: dict[str, Spent] = {}
        usage = self._usage
        if usage is None or run.usage_grew:  # most commits follow a tool: nothing spent
            usage, by_node = self._usage_change(run)
        inner: dict[str, dict[str, list[Any]]] = {}
        if run.child is not None:
            positions, inner = self._sub_flows(run, positions)
        step, output = run.step, jsonable(run.output)
        replies = dict(run.replies) if run.replies else {}
        last = (step, positions, usage, output, context_type, replies)
        batches = self._batches
        if (
            batches is not None
            and status == "running"
            and not (reason or inner or context_type or replies)
            and len(chats) == self.chats
            and len(notes) == self.notes
        ):
            self.last = last
            held = self.held
            held.append(  # SQLiteCheckpointer.commit_steps's item, by position
                (
                    self.seq,
                    step,
                    positions,
                    self.messages,  # messages_from
                    messages[self.messages :],
                    usage,
                    by_node,
                    path[self.path :],
                    context,
                    trace[self.trace :],
                    output,
                    None,  # extra
                    "running",  # status
                    "",  # reason
                    0.0,  # created: when handed over
                )
            )
            if len(held) >= BATCH:
                self.hand_over()
            elif not self.announced:
                self.announced = True
                batches.announce(self)
        else:
            self.hand_over()  # the steps held come first
            # Fields by position, in Commit's order: a call by keyword costs three
            # times as much.
            commit = Commit(
                run.run_id,
                self.flow,
                self.seq,
                status,
                reason,
                step,
                positions,
                self.messages,  # messages_from
                messages[self.messages :],
                usage,
                by_node,
                context,
                context_type,
                path[self.path :],
                trace[self.trace :],
                chats[self.chats :],
                notes[self.notes :],
                inner,
                output,
                replies,
                waiting,
                self.parent,
                self.started,
                time.time(),  # created
            )
            self.store.commit(commit)  # if it fails, the run is still at the last stored
            self.last = last
            self._stored = (last, len(messages))
            self.chats, self.notes = len(chats), len(notes)
        self.messages, self.path, self.trace = len(messages), len(path), len(trace)
        self.committed = time.monotonic()

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
            assert self._batches is not None  # steps are held only for such a store
            try:
                self._batches.commit_steps(self.run_id, self.flow, self.parent, self.started, batch)
            except UnstorableStep as failure:  # the steps before it were stored
                self.failure = failure
                stored = [step for step in batch if step[0] < failure.seq]
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
        if self.last is None:
            self.commit(run, run.positions(), status, reason)
            return
        step, positions, usage, output, context_type, replies = self.last
        self.hand_over()
        self.seq += 1
        self.store.commit(
            Commit(
                run.run_id,
                self.flow,
                self.seq,
                status,
                reason,
                step,
                positions,
                self.messages,  # messages_from
                [],
                usage,
                {},
                None,
                context_type,
                output=output,
                replies=replies,
                parent=self.parent,
                started=self.started,
            )
        )


def _stored(step: Step) -> tuple[Last, int]:
    """What a plain step handed to the store left the run at, and its messages."""
    number, positions, start, messages, usage = step[1:6]
    return (number, positions, usage, step[10], None, {}), start + len(messages)


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: pydantic models and the like converted, anything else
    as its text (a node's output is kept for show, not computed with)."""
    if type(value) in PLAIN_OUTPUTS:
        return value  # most outputs: no conversion to pay for at every commit
    return to_jsonable_python(value, fallback=str)


PLAIN_OUTPUTS = frozenset({str, int, float, bool, type(None)})  # JSON data as they are


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _c_encoder() -> Callable[[Any], str]:
    """json's C encoder made once (``JSONEncoder.encode`` makes one per call, which
    costs more than encoding a small context). It does not look for cycles: a cycle
    ends in RecursionError, and ``_ENCODER`` then tells what is wrong."""
    make = getattr(json.encoder, "c_make_encoder", None)  # not in the type stubs
    if make is None:  # a Python without json's C accelerator
        return _ENCODER.encode
    no_cycle_check, indent, sort_keys, skip_keys, allow_nan = None, None, False, False, True
    chunks = make(
        no_cycle_check,
        _ENCODER.default,
        json.encoder.encode_basestring,
        indent,
        ":",
        ",",
        sort_keys,
        skip_keys,
        allow_nan,
    )
    return lambda value: "".join(chunks(value, 0))


_ENCODE = _c_encoder()


PLAIN = frozenset({str, int, bool, type(None)})  # values every JSON encoder writes alike


def dump_context(context: Any, run_id: str) -> tuple[str, str | None]:
    """The context variables as JSON text, and the pydantic model's import path."""
    if type(context) is dict:
        for key, value in context.items():
            if type(key) is not str or type(value) not in PLAIN:
                break
        else:  # most contexts: flat, of plain values, which orjson writes fastest
            try:
                return orjson.dumps(context).decode(), None
            except orjson.JSONEncodeError:
                pass  # an int over 64 bits
    elif isinstance(context, BaseModel):
        kind = type(context)
        return context.model_dump_json(), f"{kind.__module__}:{kind.__qualname__}"
    try:
        return _ENCODE(context), None
    except (TypeError, ValueError, RecursionError):
        pass  # encode again, checking for cycles, to say what is wrong
    try:
        return _ENCODER.encode(context), None
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
