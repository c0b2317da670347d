"""What a streamed run says as it goes: typed, JSON-serialisable events.

``flow.astream()`` and ``flow.stream()`` yield them. Each carries the run's id, the step
it belongs to, and ``path``: the nodes it happened in, outermost first (``["triage"]``
for a node of the flow; ``["checks", "check_id"]`` for a node of the sub-flow
``checks``; ``["verify", "critic"]`` for the agent ``critic`` in the nested chat
``verify``; ``[]`` for the run's own events). Every event has a string ``type`` that
says which it is, and ``model_dump_json()``; ``EVENTS`` parses them back.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, TypeAdapter, field_serializer
from pydantic_core import to_jsonable_python

from flowgraph._base.context import Usage
from flowgraph._base.result import RunResult


class Event(BaseModel):
    """What every event carries."""

    run_id: str
    step: int
    """The run's step (node visits so far) when it happened; inside a sub-flow, the
    sub-flow's own step."""
    path: list[str] = Field(default_factory=list)
    """The nodes it happened in, outermost first; ``[]`` for the run's own events."""

    @property
    def node(self) -> str | None:
        """The innermost node it happened in (None for the run's own events)."""
        return self.path[-1] if self.path else None


class RunStarted(Event):
    """A run began, or a stored one was resumed."""

    type: Literal["run_started"] = "run_started"
    flow: str
    resumed: bool = False


class NodeEntered(Event):
    """A node's visit began."""

    type: Literal["node_entered"] = "node_entered"
    kind: str
    """``"agent"``, ``"tool"``, ``"human"``, ``"nested"`` or ``"flow"``."""


class TextDelta(Event):
    """A piece of an assistant's answer, as the model sends it."""

    type: Literal["text_delta"] = "text_delta"
    delta: str


class ToolCallDelta(Event):
    """A piece of a tool call the model is writing: its id and name come first, then
    its arguments (JSON text) in pieces."""

    type: Literal["tool_call_delta"] = "tool_call_delta"
    index: int
    """Which of the completion's tool calls (0 for the first)."""
    call_id: str | None = None
    name: str | None = None
    delta: str = ""
    """A piece of the call's arguments."""


class RequestRetried(Event):
    """A model request failed (a dropped stream, a 5xx) and is sent again: the text
    and tool-call pieces since the node's last ``node_entered`` or ``tool_finished``
    were of the failed attempt and will come again."""

    type: Literal["request_retried"] = "request_retried"
    attempt: int
    error: str


class ToolStarted(Event):
    """A tool call began (it runs beside the turn's other calls)."""

    type: Literal["tool_started"] = "tool_started"
    call_id: str
    tool: str
    arguments: str


class ToolFinished(Event):
    """A tool call ended; ``output`` is what the model reads back."""

    type: Literal["tool_finished"] = "tool_finished"
    call_id: str
    tool: str
    output: str
    error: bool = False
    """The call failed (bad arguments, an unknown tool, an exception): ``output`` says
    why, and the model reads that."""


class Injected(Event):
    """An ``after_completion`` hook added messages to the conversation."""

    type: Literal["injected"] = "injected"
    hook: str
    messages: list[dict[str, Any]]


class HandedOff(Event):
    """The run leaves a node by an edge."""

    type: Literal["handoff"] = "handoff"
    source: str
    target: str
    edge: Literal["predicate", "llm", "fallback"]
    label: str = ""


class NodeExited(Event):
    """A node's visit ended: its output, time and usage."""

    type: Literal["node_exited"] = "node_exited"
    kind: str
    output: Any = None
    seconds: float = 0.0
    usage: Usage = Field(default_factory=Usage)

    @field_serializer("output")
    def _output(self, output: Any) -> Any:
        # A tool step may return anything: what JSON cannot hold is written as text.
        return to_jsonable_python(output, fallback=str)


class WaitingForReply(Event):
    """The run paused for a human (a ``Human`` node, ``ctx.interrupt``, an approval);
    ``resume`` it with the reply. The ``run_finished`` event follows."""

    type: Literal["waiting_for_reply"] = "waiting_for_reply"
    prompt: str
    kind: str


class RunFinished(Event):
    """The last event: the run completed, paused, or failed (``result.status``)."""

    type: Literal["run_finished"] = "run_finished"
    result: RunResult


StreamEvent = Annotated[
    RunStarted
    | NodeEntered
    | TextDelta
    | ToolCallDelta
    | RequestRetried
    | ToolStarted
    | ToolFinished
    | Injected
    | HandedOff
    | NodeExited
    | WaitingForReply
    | RunFinished,
    Field(discriminator="type"),
]
"""Any event of a streamed run, told apart by its ``type``."""

EVENTS: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)
"""Parses an event back from its JSON: ``EVENTS.validate_json(line)``."""

BY_TYPE: dict[str, type[Event]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(StreamEvent)[0])
}
"""Each event's class by its ``type``, as the union above lists them."""
