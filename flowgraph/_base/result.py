"""The result of a run."""

from __future__ import annotations

import reprlib
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from flowgraph._base.context import Usage
from flowgraph._base.errors import UsageError
from flowgraph._base.messages import Message

if TYPE_CHECKING:
    import graphviz

Status = Literal["completed", "waiting", "failed"]
WaitKind = Literal["human", "interrupt", "approval"]


class Waiting(BaseModel):
    """What a paused run waits for: a reply to ``prompt``, asked at ``node``."""

    key: str
    node: str
    prompt: str
    kind: WaitKind = "human"


class ChatResult(BaseModel):
    """One nested chat as it ran: its opening message, its messages, its summary."""

    node: str
    step: int
    index: int
    recipient: str
    sender: str | None = None
    message: str
    messages: list[Message] = Field(default_factory=list)
    summary: str | None = None


class HookRecord(BaseModel):
    """What one ``after_completion`` hook did to the run during a step, when it did
    something a reader of the run should see: the messages it injected, the flows it
    ran (``await other.arun(...)`` inside the hook)."""

    hook: str
    point: Literal["completion", "node_exit"]
    injected: list[str] = Field(default_factory=list)
    """The roles of the messages it injected, in order."""
    flows: list[str] = Field(default_factory=list)
    """The names of the flows it ran."""


class StepRecord(BaseModel):
    """One node visit: when, how long, what it cost, and the edge it left by."""

    step: int
    node: str
    seconds: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    edge: Literal["predicate", "llm", "fallback"] | None = None
    next: str | None = None
    inner: list[StepRecord] = Field(default_factory=list)
    """A sub-flow's own steps, when this step ran one."""
    model: str | None = None
    """The name of the model the visit's requests went to, as resolved for the run."""
    hooks: list[HookRecord] = Field(default_factory=list)
    """The hooks that injected messages or ran flows during the visit."""
    max_turns_reached: bool = False
    """The agent made ``max_turns`` completions without a final answer."""


class Drawer(Protocol):
    """What a result draws itself with: the flow it came from (``Flow`` is one)."""

    def _render_run(
        self,
        result: RunResult,
        path: str | None,
        *,
        format: str | None,
        direction: str,
        detail: str,
    ) -> graphviz.Digraph: ...

    def _mermaid_run(self, result: RunResult, *, direction: str, detail: str) -> str: ...

    def _svg_run(self, result: RunResult) -> str: ...


class RunResult(BaseModel):
    """What a run produced, and how it went.

    Attributes:
        output: the final value: the text of the last agent, or a tool step's return.
        messages: the conversation, OpenAI chat format.
        context: the context variables after the run.
        path: the names of the nodes visited, in order.
        usage: requests and tokens of the whole run; ``usage_by_node`` per node.
        run_id: the run's id.
        status: ``"completed"``, ``"waiting"`` (paused for a human) or ``"failed"``.
        reason: why the run ended, in words (``"reached END"``, or which node had no
            edge to take, or the error).
        steps: the number of node visits; ``trace`` has one record per visit.
        notes: things worth knowing that did not stop the run (an agent that
            reached ``max_turns``).
        chats: the nested chats run, in order, with their own messages and summaries
            (they are not poured into ``messages``).
        waiting: for a paused run, what it waits for: ``waiting.prompt``, the node,
            and the kind (``"human"``, ``"interrupt"``, ``"approval"``).

    Example:
        >>> result = flow.run("I want a refund")  # doctest: +SKIP
        >>> result.path, result.output  # doctest: +SKIP
        (['triage', 'refund'], 'Your refund is on its way.')
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    flow: str
    run_id: str
    status: Status
    reason: str
    output: Any = None
    messages: list[Message] = Field(default_factory=list)
    context: Any = None
    path: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    usage_by_node: dict[str, Usage] = Field(default_factory=dict)
    steps: int = 0
    trace: list[StepRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    chats: list[ChatResult] = Field(default_factory=list)
    waiting: Waiting | None = None
    _flow: Any = PrivateAttr(default=None)

    def render(
        self,
        path: str | None = None,
        *,
        format: str | None = None,
        direction: str = "TB",
        detail: str = "full",
    ) -> graphviz.Digraph:
        """Draw the flow with this run over it: the nodes and edges taken in red, with
        step numbers, how often, time, requests and tokens per node; the node where a
        failed run stopped filled red, the one a waiting run waits at outlined in
        dashed amber with its prompt. Options as for ``Flow.render``."""
        return self._drawer()._render_run(
            self, path, format=format, direction=direction, detail=detail
        )

    def to_mermaid(self, *, direction: str = "TB", detail: str = "full") -> str:
        """The flow as Mermaid text (as ``Flow.to_mermaid``), with the node where this run
        failed or waits styled as in ``render``, and its prompt when waiting."""
        return self._drawer()._mermaid_run(self, direction=direction, detail=detail)

    def _repr_svg_(self) -> str:
        return self._drawer()._svg_run(self)

    def _drawer(self) -> Drawer:
        """The flow this result came from, or an error that says why there is none."""
        if self._flow is None:
            raise UsageError(
                "this result did not come from running a flow in this process, so there is "
                "no graph to draw it over"
            )
        drawer: Drawer = self._flow
        return drawer

    def __repr__(self) -> str:
        """A line, not the whole conversation and trace: asyncio.run formats the result
        it returns (Python 3.11), and a long run's would take longer than the run."""
        short = reprlib.Repr()
        short.maxstring = short.maxother = 60
        short.maxlist = 6
        return (
            f"RunResult(status={self.status!r}, steps={self.steps}, "
            f"path={short.repr(self.path)}, output={short.repr(self.output)}, "
            f"run_id={self.run_id!r})"
        )

    __str__ = __repr__
