"""The errors of a run that failed: each carries the run as far as it went.

Apart from ``errors.py`` because they carry a ``RunResult``, which is built on the
errors below it (see the tree in ``errors.py``).
"""

from __future__ import annotations

from flowgraph._base.errors import FlowgraphError
from flowgraph._base.result import RunResult


class RunError(FlowgraphError):
    """A run failed. Nothing done is lost: ``result`` holds the run state so far.

    Attributes:
        result: the run as far as it went (``status == "failed"``): messages, path,
            context, usage.
        node: the name of the node that was running, if any.
        run_id: the run's id.
        step: the step counter when the run failed.
    """

    def __init__(self, message: str, *, result: RunResult | None = None, node: str | None = None):
        super().__init__(message)
        self.result = result
        self.node = node
        self.run_id = result.run_id if result is not None else None
        self.step = result.steps if result is not None else None


class MaxStepsExceeded(RunError):
    """The run visited more nodes than its ``max_steps`` allows: probably a loop."""


class MaxTurnsExceeded(RunError):
    """An agent reached its ``max_turns`` without a final answer, in a flow that treats
    that as an error (``fg.Flow(..., on_max_turns="fail")``)."""


class DeadlineExceeded(RunError):
    """The run's ``deadline`` passed; its committed state can be resumed."""


class ModelError(RunError):
    """The model server failed after the client's retries, or answered unusably."""
