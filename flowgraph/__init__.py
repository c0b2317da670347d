"""flowgraph: LLM multi-agent workflows as graphs you can run, test and draw.

Agents (an LLM with a tool loop) and tool steps (Python functions) are nodes;
hand-off conditions are edges, decided by the LLM, by Python predicates, or taken
as the fallback.

Example:
    >>> import flowgraph as fg
    >>> triage = fg.Agent("triage", instructions="Route the customer.")
    >>> refund = fg.Agent("refund", instructions="Handle refunds.")
    >>> flow = fg.Flow("support")
    >>> _ = flow.edge(fg.START, triage)
    >>> _ = flow.edge(triage, refund, when="The customer wants money back.")
    >>> _ = flow.edge(triage, fg.END)
    >>> _ = flow.edge(refund, fg.END)
    >>> result = flow.run("I want a refund for order A-1")  # doctest: +SKIP
"""

from typing import TYPE_CHECKING, Any

from flowgraph._base.context import RunContext, Usage
from flowgraph._base.errors import (
    ConfigurationError,
    FlowgraphError,
    FlowgraphWarning,
    FlowValidationError,
    StoreError,
    UsageError,
)
from flowgraph._base.failures import (
    DeadlineExceeded,
    MaxStepsExceeded,
    MaxTurnsExceeded,
    ModelError,
    RunError,
)
from flowgraph._base.result import ChatResult, HookRecord, RunResult, StepRecord, Waiting
from flowgraph._base.retry import Retry
from flowgraph._flow import Flow
from flowgraph._graph.edges import ContextStr, Edge, Handoff
from flowgraph._graph.hooks import (
    ErrorEvent,
    HandoffEvent,
    HookContext,
    Hooks,
    NodeEvent,
    ToolEvent,
)
from flowgraph._graph.human import Human
from flowgraph._graph.nested import Chat, NestedChat
from flowgraph._graph.nodes import END, START, Agent, Node, ToolStep
from flowgraph._graph.subflow import SubFlow
from flowgraph._graph.tools import Tool
from flowgraph._llm.local import LocalModel
from flowgraph._llm.models import Completion, Model, OpenAIModel
from flowgraph._store.memory import MemoryCheckpointer
from flowgraph._store.protocol import Checkpointer
from flowgraph._store.records import RunInfo

if TYPE_CHECKING:
    from flowgraph._store.sqlite import SQLiteCheckpointer

__version__ = "0.1.0"

__all__ = [
    "END",
    "START",
    "Agent",
    "Chat",
    "ChatResult",
    "Checkpointer",
    "Completion",
    "ConfigurationError",
    "ContextStr",
    "DeadlineExceeded",
    "Edge",
    "ErrorEvent",
    "Flow",
    "FlowValidationError",
    "FlowgraphError",
    "FlowgraphWarning",
    "Handoff",
    "HandoffEvent",
    "HookContext",
    "HookRecord",
    "Hooks",
    "Human",
    "LocalModel",
    "MaxStepsExceeded",
    "MaxTurnsExceeded",
    "MemoryCheckpointer",
    "Model",
    "ModelError",
    "NestedChat",
    "Node",
    "NodeEvent",
    "OpenAIModel",
    "Retry",
    "RunContext",
    "RunError",
    "RunInfo",
    "RunResult",
    "SQLiteCheckpointer",
    "StepRecord",
    "StoreError",
    "SubFlow",
    "Tool",
    "ToolEvent",
    "ToolStep",
    "Usage",
    "UsageError",
    "Waiting",
    "__version__",
]

# Exported errors show where users find them: `flowgraph.FlowValidationError` in a
# traceback, not the private module that defines it. Only errors: other classes keep
# their module, which `typing.get_type_hints` (and so pydantic) reads their
# annotations in.
for _name in __all__:
    _value = globals().get(_name)  # SQLiteCheckpointer loads on first use
    if isinstance(_value, type) and issubclass(_value, BaseException):
        _value.__module__ = "flowgraph"
del _name, _value


def __getattr__(name: str) -> Any:
    # The SQLite store loads on first use, with the sqlite3 driver: most programs keep
    # no store, and it is a thirtieth of flowgraph's import.
    if name == "SQLiteCheckpointer":
        from flowgraph._store.sqlite import SQLiteCheckpointer

        globals()[name] = SQLiteCheckpointer
        return SQLiteCheckpointer
    raise AttributeError(f"module 'flowgraph' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
