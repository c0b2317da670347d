"""The errors flowgraph raises.

Every error is a ``FlowgraphError``. Build-time errors (a broken graph, a bad
tool signature, a setting out of range) are apart from run-time errors (a server
that fails, a run that loops) and from misuse of the API::

    FlowgraphError
    ├── FlowValidationError     the flow cannot run as built; raised before any request
    │                           (also a ValueError: a value the flow cannot take)
    ├── ConfigurationError      no model could be found, or a setting is wrong
    ├── UsageError              the API was called in a way it does not support
    ├── StoreError              a run store could not be written or read
    └── RunError                a run failed; carries the state so far in ``.result``
        ├── MaxStepsExceeded    the run took more node visits than ``max_steps``
        ├── DeadlineExceeded    the run's deadline passed
        └── ModelError          the model server failed, after the client's retries

Run-time errors carry the run id, the step and the node, and chain their cause;
they live in ``failures.py``, beside the result they carry. Every exported error
shows as ``flowgraph.X`` in a traceback. A few exceptions never leave flowgraph
(a pause unwinding a run, a deadline or a tool's timeout on its way to the error
or the tool message it becomes); anything else a user can meet is one of these.
"""

from __future__ import annotations


class FlowgraphError(Exception):
    """The root of every error flowgraph raises."""


class FlowValidationError(FlowgraphError, ValueError):
    """The flow cannot run as built: the message names the node or edge and the fix.

    Example:
        >>> import flowgraph as fg
        >>> flow = fg.Flow("empty")
        >>> flow.validate()
        Traceback (most recent call last):
        ...
        flowgraph.FlowValidationError: flow 'empty' is not valid: it has no edge...

    Attributes:
        problems: each problem found, one line each.
    """

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


class FlowgraphWarning(UserWarning):
    """Something legal that is often a mistake (a node with no out-edge, a tool
    parameter with no type). Silence it, or make it an error, with ``warnings``::

        warnings.simplefilter("error", fg.FlowgraphWarning)
    """


class ConfigurationError(FlowgraphError):
    """A needed setting is missing or wrong, e.g. no model is configured."""


class UsageError(FlowgraphError):
    """The API was used in a way it does not support; the message says what to do."""


class StoreError(FlowgraphError):
    """A run store (a checkpointer) could not be written or read; the message names it."""
