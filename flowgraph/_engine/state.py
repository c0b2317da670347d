"""One run's state: what its commits store and a resume rebuilds, and nothing else.

``RunState`` is plain data, read by the journal (which turns it into commits) and
rebuilt by ``resume.py``; the engine's ``Run`` adds the services a run uses (model
calls, hooks, checkpoints, pauses) on top of it.
"""

from __future__ import annotations

from typing import Any

from flowgraph._base.context import RunContext, Usage
from flowgraph._base.messages import Message
from flowgraph._base.result import ChatResult, StepRecord
from flowgraph._store.records import Position


class RunState:
    """The conversation, context, logs, counters and position of one run (or of a
    sub-flow running inside one: then ``parent`` is the run around it).

    Attributes:
        run_id: the run's id (a sub-flow shares its parent's).
        flow: the name of the flow this state runs.
        messages: the conversation, OpenAI chat format.
        ctx: what user code sees of the run; ``ctx.context`` is the context variables.
        usage, usage_by_node: requests and tokens of the run and per node;
            ``usage_grew`` names the nodes that spent since the last commit.
        path, trace, notes, chats: the run's logs.
        step: node visits made; output: the output of the last node.
        position: where the run stands (the last checkpoint).
        child: the sub-flow running inside this run's visit, if any.
        replies: a resumed run's replies to its pauses, by key.
        resume: where a resumed run (and its sub-flows) stood; ``inner_logs``: a
            resumed run's sub-flow log entries, by where each ran; ``at``: the
            resumed visit's position, for the node's visit to take.
    """

    def __init__(
        self,
        run_id: str,
        flow: str,
        messages: list[Message],
        context: Any,
        parent: RunState | None = None,
    ) -> None:
        self.run_id = run_id
        self.flow = flow
        self.parent = parent
        self.messages = messages
        self.usage = Usage()
        self.usage_by_node: dict[str, Usage] = {}
        self.usage_grew: set[str] = set()
        self.path: list[str] = []
        self.trace: list[StepRecord] = []
        self.notes: list[str] = []
        self.chats: list[ChatResult] = []
        self.step = 0
        self.output: Any = None
        self.position: Position | None = None
        self.child: RunState | None = None
        self.replies: dict[str, Any] = {}
        self.resume: list[Position] = []
        self.inner_logs: dict[str, dict[str, list[Any]]] = {}
        self.at: Position | None = None
        self.ctx: RunContext[Any] = RunContext(
            context, messages, run_id, usage=self.usage, path=self.path
        )

    def positions(self) -> list[Position]:
        """Where this run stands, then where the sub-flow running inside it stands."""
        own = [self.position] if self.position is not None else []
        return own + self.child.positions() if self.child is not None else own

    def where(self) -> str:
        """The steps of the root run and of each sub-flow down to this one, as in
        ``"3.2"``: names a point of the run, and where a sub-flow in it runs."""
        steps: list[str] = []
        state: RunState | None = self
        while state is not None:
            if state.position is not None:
                steps.append(str(state.position.step))
            state = state.parent
        return ".".join(reversed(steps))

    def spend(self, node: str, usage: Usage) -> None:
        """Count ``usage`` for ``node`` and for the run."""
        self.usage.add(usage)
        node_usage = self.usage_by_node.get(node)
        if node_usage is None:
            node_usage = self.usage_by_node[node] = Usage()
        node_usage.add(usage)
        self.usage_grew.add(node)
