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

from flowgraph._checkpoint import Checkpointer, MemoryCheckpointer, RunInfo, Waiting
from flowgraph._context import RunContext, Usage
from flowgraph._edges import Edge
from flowgraph._errors import (
    ConfigurationError,
    DeadlineExceeded,
    FlowgraphError,
    FlowValidationError,
    MaxStepsExceeded,
    ModelError,
    RunError,
    StoreError,
    UsageError,
)
from flowgraph._flow import Flow
from flowgraph._hooks import (
    ErrorEvent,
    HandoffEvent,
    HookContext,
    Hooks,
    NodeEvent,
    ToolEvent,
)
from flowgraph._human import Human
from flowgraph._local import LocalModel
from flowgraph._models import Completion, Model, OpenAIModel
from flowgraph._nested import Chat, ChatResult, NestedChat
from flowgraph._nodes import END, START, Agent, Node, ToolStep
from flowgraph._result import RunResult, StepRecord
from flowgraph._retry import Retry
from flowgraph._sqlite import SQLiteCheckpointer
from flowgraph._subflow import SubFlow
from flowgraph._tools import Tool

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
    "DeadlineExceeded",
    "Edge",
    "ErrorEvent",
    "Flow",
    "FlowValidationError",
    "FlowgraphError",
    "HandoffEvent",
    "HookContext",
    "Hooks",
    "Human",
    "LocalModel",
    "MaxStepsExceeded",
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
