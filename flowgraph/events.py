"""The events of a streamed run (``flow.astream()``, ``flow.stream()``).

Every event is a pydantic model with a string ``type``, the run's ``run_id``, the
``step`` it belongs to and its ``path``: the nodes it happened in, outermost first
(``[]`` for the run's own events). ``model_dump_json()`` writes one; ``EVENTS``
parses one back (``EVENTS.validate_json(line)``).

========================  ====================  =======================================
type                      class                 fields besides run_id, step, path
========================  ====================  =======================================
``run_started``           ``RunStarted``        flow, resumed
``node_entered``          ``NodeEntered``       kind
``text_delta``            ``TextDelta``         delta: a piece of an answer
``tool_call_delta``       ``ToolCallDelta``     index, call_id, name, delta (arguments)
``request_retried``       ``RequestRetried``    attempt, error
``tool_started``          ``ToolStarted``       call_id, tool, arguments
``tool_finished``         ``ToolFinished``      call_id, tool, output, error
``injected``              ``Injected``          hook, messages
``handoff``               ``HandedOff``         source, target, edge, label
``node_exited``           ``NodeExited``        kind, output, seconds, usage
``waiting_for_reply``     ``WaitingForReply``   prompt, kind
``run_finished``          ``RunFinished``       result: the ``RunResult``
========================  ====================  =======================================

Example:
    >>> import flowgraph.events as events
    >>> event = events.TextDelta(run_id="r1", step=1, path=["triage"], delta="Hel")
    >>> events.EVENTS.validate_json(event.model_dump_json()) == event
    True
"""

from __future__ import annotations

from flowgraph._base.events import (
    EVENTS,
    Event,
    HandedOff,
    Injected,
    NodeEntered,
    NodeExited,
    RequestRetried,
    RunFinished,
    RunStarted,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolFinished,
    ToolStarted,
    WaitingForReply,
)

__all__ = [
    "EVENTS",
    "Event",
    "HandedOff",
    "Injected",
    "NodeEntered",
    "NodeExited",
    "RequestRetried",
    "RunFinished",
    "RunStarted",
    "StreamEvent",
    "TextDelta",
    "ToolCallDelta",
    "ToolFinished",
    "ToolStarted",
    "WaitingForReply",
]
