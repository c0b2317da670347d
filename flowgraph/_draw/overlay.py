"""What a run adds to a picture of its flow: steps, time and usage per node, the
edges taken, and where it failed, waits for a reply or is running now.

Node ids are those of the picture: a sub-flow's nodes are ``"<subflow>/<node>"``.
An ``Overlay`` is built from a finished ``RunResult``, or event by event while a
run goes on (the live view in Jupyter).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from flowgraph._base.context import Usage

if TYPE_CHECKING:
    from flowgraph._base.result import HookRecord, RunResult, StepRecord

SEPARATOR = "/"  # not ":", which DOT reads as a node port
START, END = "START", "END"
PROMPT_CHARS = 40  # of a waiting run's prompt, in the waiting node's label
ERROR_CHARS = 60  # of a failed run's error, in the failed node's label

Stop = Literal["failed", "waiting"]
"""Where a run stopped short of END: each has its own look in the picture."""


@dataclass
class NodeMarks:
    """A node's share of a run."""

    steps: list[str] = field(default_factory=list)
    seconds: float = 0.0
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    """The model its requests went to, as the run resolved it."""
    hooks: list[str] = field(default_factory=list)
    """What hooks did there: ``"brief: +1 system, ran research"``."""
    out_of_turns: bool = False
    """An agent's visit there reached max_turns without a final answer."""


@dataclass
class Overlay:
    """The run as the picture needs it; empty means the plain flow."""

    title: str = ""
    nodes: dict[str, NodeMarks] = field(default_factory=dict)
    moves: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    failed: str | None = None
    active: str | None = None
    waiting: str | None = None
    prompt: str = ""
    """What the run waits for at ``waiting``: its prompt, on one line and shortened."""
    error: str = ""
    """Why the run failed at ``failed``: its error, on one line and shortened."""
    saying: str = ""
    """What the ``active`` node's model has written so far (a live view's)."""

    def visit(self, node: str, step: str, seconds: float = 0.0, usage: Usage | None = None) -> None:
        marks = self.nodes.setdefault(node, NodeMarks())
        if step not in marks.steps:
            marks.steps.append(step)
        marks.seconds += seconds
        if usage is not None:
            marks.usage.add(usage)

    def move(self, source: str, target: str, step: str) -> None:
        self.moves.setdefault((source, target), []).append(step)

    def taken(self, source: str, target: str) -> list[str]:
        return self.moves.get((source, target), [])

    def touched(self, node: str) -> bool:
        """True if the run moved from or to ``node`` (START and END are never visited)."""
        return any(node in move for move in self.moves)

    def stop(self, node: str) -> Stop | None:
        """How the run stopped at ``node``, if it stopped there short of END."""
        if node == self.failed:
            return "failed"
        return "waiting" if node == self.waiting else None

    def note(self, node: str) -> str:
        """A line for ``node``'s label on why the run stopped there ("" for none)."""
        if node == self.failed:
            return f"failed: {self.error}"
        return f"waiting: {self.prompt}" if node == self.waiting else ""

    @classmethod
    def of(cls, result: RunResult) -> Overlay:
        overlay = cls(title=f"run {result.run_id[:8]}: {result.status}")
        ended = result.status == "completed"
        last = overlay._walk(result.trace, prefix="", numbering="", ended=ended)
        if result.status in ("failed", "waiting") and result.path:
            # The failing or waiting visit never finished: it has no step record of its
            # own. In a sub-flow, it is the sub-flow's visit that is marked.
            node = result.path[-1]
            if len(result.path) > len(result.trace):
                step = str(len(result.path))
                overlay.move(last, node, step)
                overlay.visit(node, step)
            if result.status == "failed":
                overlay.failed = node
                overlay.error = _shorten(_unnamed(result.reason, node), ERROR_CHARS)
            else:
                overlay.waiting = node
                overlay.prompt = _shorten(result.waiting.prompt if result.waiting else "")
        return overlay

    def _walk(self, trace: Sequence[StepRecord], prefix: str, numbering: str, ended: bool) -> str:
        """Mark ``trace``'s visits and moves; return the id of the last node visited.
        ``ended``: the run completed, so a last visit that took no edge ended it (a
        node with no out-edge)."""
        previous = prefix + START
        for record in trace:
            step = f"{numbering}{record.step}"
            node = prefix + record.node
            self.move(previous, node, step)
            self.visit(node, step, record.seconds, record.usage)
            marks = self.nodes[node]
            marks.model = record.model or marks.model
            marks.hooks.extend(map(_hook_line, record.hooks))
            marks.out_of_turns = marks.out_of_turns or record.max_turns_reached
            if record.inner:
                # A sub-flow's record is made when its run completed.
                self._walk(record.inner, node + SEPARATOR, f"{step}.", ended=True)
            if record.next == END or (ended and record.next is None and record is trace[-1]):
                self.move(node, prefix + END, "end")
            previous = node
        return previous


def _hook_line(record: HookRecord) -> str:
    """``"brief: +1 system, ran research"``: what a hook did in a step."""
    done = []
    if record.injected:
        roles = sorted(set(record.injected), key=record.injected.index)
        done.append(f"+{len(record.injected)} {'/'.join(roles)}")
    done.extend(f"ran {flow}" for flow in record.flows)
    return f"{record.hook}: {', '.join(done)}"


def _unnamed(reason: str, node: str) -> str:
    """A failure's reason without the node's name in front: the picture's node says it
    (``"tool step 'post' raised ValueError: ..."`` is ``"ValueError: ..."`` there)."""
    return re.sub(rf"^(?:[\w -]+ )?{re.escape(repr(node))}(?: raised|:) ", "", reason)


def _shorten(text: str, width: int = PROMPT_CHARS) -> str:
    """``text`` on one line, cut to ``width`` (before any escaping, so that no escape is
    cut in half)."""
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    cut = line[: width - 1]
    if " " in cut[width // 2 :]:  # end on a whole word, unless that loses too much
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"
