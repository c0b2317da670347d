"""The public names are a contract: this pins them."""

from __future__ import annotations

import flowgraph as fg
import flowgraph.testing


def test_the_public_names_of_flowgraph() -> None:
    assert sorted(fg.__all__) == sorted(
        [
            "END",
            "START",
            "Agent",
            "Chat",
            "ChatResult",
            "Checkpointer",
            "Completion",
            "ConfigurationError",
            "ContextStr",  # issue 19: an LLM condition filled from the context
            "DeadlineExceeded",
            "Edge",
            "ErrorEvent",
            "Flow",
            "FlowValidationError",
            "FlowgraphError",
            "FlowgraphWarning",  # issue 17: flowgraph's own warnings
            "HandoffEvent",
            "Handoff",  # issue 19: a tool hands off
            "HookContext",
            "HookRecord",  # issue 17: what a hook did, in a step's record
            "Hooks",
            "Human",
            "LocalModel",
            "MaxStepsExceeded",
            "MaxTurnsExceeded",  # issue 19: a flow may treat max_turns as an error
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
    )
    for name in fg.__all__:
        assert hasattr(fg, name), name


def test_the_public_names_of_flowgraph_testing() -> None:
    for name in ["ScriptedServer", "ChatRequest", "Reply", "ToolCall", "tool_call", "error"]:
        assert name in flowgraph.testing.__all__
        assert hasattr(flowgraph.testing, name)


def test_the_error_tree() -> None:
    for error in (
        fg.FlowValidationError,
        fg.ConfigurationError,
        fg.UsageError,
        fg.StoreError,
        fg.RunError,
    ):
        assert issubclass(error, fg.FlowgraphError)
    for error in (fg.MaxStepsExceeded, fg.ModelError, fg.DeadlineExceeded):
        assert issubclass(error, fg.RunError)
    assert issubclass(fg.MaxStepsExceeded, fg.RunError)
    assert issubclass(fg.ModelError, fg.RunError)
