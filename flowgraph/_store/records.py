"""What a run commits, and the records a store keeps and gives back.

A run commits after each step (once the next edge is chosen) and when it pauses,
fails or ends. Inside an agent's visit it also commits before the tool calls run
and after they are answered, when the work since the last commit took a
millisecond or more, and always (waiting for the store) before calling a tool that
takes the run context, so that a resumed run answers the same calls with the same
idempotency keys. A commit holds only what changed since the last one: the new
messages, the new path, trace, chat and note entries (its sub-flows' too), the
context if it changed, and the small state (position, usage, status). Storage
grows linearly with the run.

Most commits are plain ``Step`` records (a step of a running run: nothing rare in
it), handed to a store in batches; the others are whole ``Commit`` records. A
store gives a run back as one ``Commit``: its commits folded (``fold``).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field

from flowgraph._base.context import Usage
from flowgraph._base.errors import StoreError
from flowgraph._base.messages import Message
from flowgraph._base.result import Waiting

Phase = Literal["next", "visit", "exit"]
StoredStatus = Literal["running", "waiting", "completed", "failed"]


@dataclass(slots=True)
class Position:
    """Where a run (or a sub-flow running inside it) stands at a commit.

    ``phase`` is ``"next"`` when the edge to ``node`` was chosen and its visit has not
    begun, ``"visit"`` while ``node`` is being visited, and ``"exit"`` when the visit
    ended and the node's exit hooks and edges come next. A plain dataclass: one is
    made at every step, and most are never stored.
    """

    node: str
    phase: Phase
    step: int
    turn: int = 0
    """An agent's completions so far in this visit."""
    pending: bool = False
    """An agent's last completion has tool calls not yet answered."""
    handoff: str | None = None
    """The target of the transfer an agent chose in this visit."""
    output: Any = None
    usage: Spent | None = None
    """A sub-flow's usage so far (it joins the parent's when the sub-flow ends)."""

    def bare(self) -> bool:
        """Only the node, phase and step are set (most positions): the rest is left at
        its defaults."""
        return not (
            self.turn or self.pending or self.handoff or self.output is not None or self.usage
        )

    def dump(self) -> list[Any]:
        """The position as compact JSON data (``output`` is JSON data already)."""
        head = [self.node, self.phase, self.step]
        if self.bare():
            return head
        return [*head, self.turn, self.pending, self.handoff, self.output, self.usage]

    @classmethod
    def load(cls, data: list[Any]) -> Position:
        if len(data) == 3:
            return cls(*data)
        node, phase, step, turn, pending, handoff, output, usage = data
        spent = None if usage is None else as_spent(usage)
        return cls(node, phase, step, turn, pending, handoff, output, spent)


Spent = tuple[int, int, int]
"""Usage as a commit keeps it: requests, prompt tokens, completion tokens. A tuple is
made in a tenth of the time of a ``Usage``, and a commit is made at every step."""


def spent(usage: Usage) -> Spent:
    # The three fields in one call on the model's __dict__: each attribute read of a
    # pydantic model costs four times a plain object's, and commits take several.
    counts: Spent = _COUNTS(usage.__dict__)
    return counts


_COUNTS = operator.itemgetter("requests", "prompt_tokens", "completion_tokens")


def as_spent(data: Sequence[int]) -> Spent:
    """``Spent`` back from JSON data."""
    requests, prompt_tokens, completion_tokens = data
    return (requests, prompt_tokens, completion_tokens)


def usage_of(counts: Spent) -> Usage:
    requests, prompt_tokens, completion_tokens = counts
    return Usage(
        requests=requests, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )


@dataclass(slots=True)
class Commit:
    """One commit of a run: what changed since the commit before.

    Lists are appended to what earlier commits hold: ``messages`` start at index
    ``messages_from`` of the conversation. ``context`` is None when unchanged;
    ``usage_by_node`` holds the nodes whose usage changed (``usage`` is the run's).
    ``fold`` puts the commits together into the whole run. The trace and chat entries are
    ``StepRecord`` and ``ChatResult`` models as the run made them, or their JSON data
    when read back from a file; the rest is JSON data.
    """

    run_id: str
    flow: str
    seq: int
    status: StoredStatus
    reason: str
    step: int
    positions: list[Position]
    messages_from: int
    messages: list[Message]
    usage: Spent
    usage_by_node: dict[str, Spent]
    context: str | None = None
    context_type: str | None = None
    path: list[str] = field(default_factory=list)
    trace: list[Any] = field(default_factory=list)
    chats: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inner: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    """The entries appended to the path, trace, chats and notes of the sub-flows
    running inside the run, by where each runs (the steps of the runs around it,
    as in ``"3"`` or ``"3.2"``); a sub-flow's own entries join its parent's once it
    ends."""
    output: Any = None
    replies: dict[str, Any] = field(default_factory=dict)
    waiting: Waiting | None = None
    parent: str | None = None
    started: float = 0.0
    """When the run began (seconds since the epoch)."""
    created: float = field(default_factory=time.time)
    """When this commit was made."""


# A Commit's fields that are seldom set: a Step carries those that are in ``extra``.
RARE = ("status", "chats", "notes", "inner", "reason", "context_type", "replies", "waiting")


class Step(NamedTuple):
    """One step of a running run, as a journal hands it to a store: a ``Commit``'s
    fields less the run's own (id, flow, parent, start), which come with the batch.

    A plain step (status running, nothing rare) has ``extra=None``; a ``Commit``
    made into a Step (``step_of``) carries its rare fields that are set in ``extra``.
    A tuple underneath: a store reads the fields by name or unpacks them.
    """

    seq: int
    step: int
    positions: list[Position]
    messages_from: int
    messages: list[Message]
    usage: Spent
    usage_by_node: dict[str, Spent]
    path: list[str]
    context: str | None
    trace: list[Any]
    output: Any
    extra: dict[str, Any] | None = None
    """The fields of ``RARE`` that are set (``status`` only when not running)."""
    status: StoredStatus = "running"
    reason: str = ""
    created: float = 0.0
    """When it was made; 0: when the store takes it."""


def step_of(commit: Commit) -> Step:
    """``commit`` as a Step (its run's own fields left out)."""
    rare = {name: value for name in RARE if (value := getattr(commit, name))}
    if commit.status == "running":
        del rare["status"]
    return Step(
        seq=commit.seq,
        step=commit.step,
        positions=commit.positions,
        messages_from=commit.messages_from,
        messages=commit.messages,
        usage=commit.usage,
        usage_by_node=commit.usage_by_node,
        path=commit.path,
        context=commit.context,
        trace=commit.trace,
        output=commit.output,
        extra=rare,
        status=commit.status,
        reason=commit.reason,
        created=commit.created,
    )


def commit_of(run_id: str, flow: str, parent: str | None, started: float, step: Step) -> Commit:
    """The Commit a Step of run ``run_id`` stands for."""
    rare: dict[str, Any] = dict(step.extra or {})
    rare.pop("output", None)
    rare.pop("status", None)
    return Commit(
        run_id=run_id,
        flow=flow,
        seq=step.seq,
        status=step.status,
        reason=step.reason,
        step=step.step,
        positions=step.positions,
        messages_from=step.messages_from,
        messages=step.messages,
        usage=step.usage,
        usage_by_node=step.usage_by_node,
        context=step.context,
        path=step.path,
        trace=step.trace,
        output=step.output,
        parent=parent,
        started=started,
        created=step.created or time.time(),
        **rare,
    )


def join_inner(
    earlier: dict[str, dict[str, list[Any]]], later: dict[str, dict[str, list[Any]]]
) -> dict[str, dict[str, list[Any]]]:
    """Sub-flow entries of two commits, one after the other."""
    if not earlier or not later:
        return later or earlier
    joined = {where: dict(logs) for where, logs in earlier.items()}
    for where, logs in later.items():
        into = joined.setdefault(where, {})
        for name, items in logs.items():
            into[name] = into.get(name, []) + items
    return joined


def fold(commits: Sequence[Commit]) -> Commit:
    """The whole run as one commit: the last state, every log, the full conversation,
    the usage of the run and of every node."""
    last = commits[-1]
    messages: list[Message] = []
    snapshot = replace(last, messages_from=0, messages=messages, path=[], trace=[], chats=[])
    snapshot.notes, snapshot.inner = [], {}
    by_node: dict[str, Spent] = {}
    snapshot.usage_by_node = by_node
    for commit in commits:
        by_node.update(commit.usage_by_node)
        del messages[commit.messages_from :]
        messages.extend(commit.messages)
        snapshot.path.extend(commit.path)
        snapshot.trace.extend(commit.trace)
        snapshot.chats.extend(commit.chats)
        snapshot.notes.extend(commit.notes)
        snapshot.inner = join_inner(snapshot.inner, commit.inner)
        if commit.context is not None:
            snapshot.context = commit.context
            snapshot.context_type = commit.context_type
    return snapshot


class UnstorableStep(StoreError):
    """A commit that cannot be stored as JSON; ``seq`` is its number. The commits
    handed over with it, before it, were stored."""

    def __init__(self, message: str, seq: int) -> None:
        super().__init__(message)
        self.seq = seq


class RunInfo(BaseModel):
    """One stored run, as ``flow.runs(store)`` lists it.

    Attributes:
        run_id: the run's id.
        flow: the name of its flow.
        status: ``"running"`` (in flight, or its process died: resume it),
            ``"waiting"``, ``"completed"`` or ``"failed"``.
        step: node visits made.
        node: the node it is at (or ended at).
        path: the names of the nodes visited, in order.
        usage: requests and tokens so far.
        reason: why it ended or what it waits for.
        created, updated: seconds since the epoch.
        parent: the run it was forked from, if any.
    """

    run_id: str
    flow: str
    status: str
    step: int
    node: str | None = None
    path: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    reason: str = ""
    created: float = 0.0
    updated: float = 0.0
    parent: str | None = None

    @property
    def age(self) -> float:
        """Seconds since the run was last committed."""
        return max(0.0, time.time() - self.updated)


def run_info(snapshot: Commit) -> RunInfo:
    """The listing entry of a folded run."""
    return RunInfo(
        run_id=snapshot.run_id,
        flow=snapshot.flow,
        status=snapshot.status,
        step=snapshot.step,
        node=snapshot.positions[0].node if snapshot.positions else None,
        path=snapshot.path,
        usage=usage_of(snapshot.usage),
        reason=snapshot.reason,
        created=snapshot.started,
        updated=snapshot.created,
        parent=snapshot.parent,
    )


def upto(commits: Sequence[Commit], step: int | None) -> list[Commit]:
    """The commits that end at step boundaries up to ``step`` (all of them for None).

    Forking "at step N" starts after step N's visit and its edge decision: the last
    commit at that step whose position is ``next``.
    """
    if step is None:
        return list(commits)
    for index in range(len(commits) - 1, -1, -1):
        commit = commits[index]
        if commit.step == step and commit.positions and commit.positions[0].phase == "next":
            return list(commits[: index + 1])
    return []
