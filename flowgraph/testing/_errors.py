"""What the scripted server raises at a test's author: `fg.UsageError`s that are also
the built-in error a Python user would catch (a wrong kind of item is a `TypeError`, a
value out of range a `ValueError`, a server in the wrong state a `RuntimeError`)."""

from __future__ import annotations

from flowgraph._base.errors import FlowgraphError, UsageError


class ScriptItemError(UsageError, TypeError):
    """A script holds something that is not a script item, or the wrong kind here."""


class ScriptValueError(UsageError, ValueError):
    """A script item was given a value out of its range."""


class ServerStateError(UsageError, RuntimeError):
    """The server was used before it started, or started twice."""


class ScriptError(FlowgraphError):
    """The script could not answer a request (exhausted, or an item failed); kept in
    `ScriptedServer.errors` and answered to the client as a server error."""


def kind_of(exc: BaseException) -> str:
    """How a script item's failure is named to the client: the built-in error a script
    error also is (``TypeError``), the user's own exception class otherwise.

    Example:
        >>> kind_of(ScriptItemError("a script item must be a str")), kind_of(KeyError("k"))
        ('TypeError', 'KeyError')
    """
    if isinstance(exc, UsageError):
        return next(c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins")
    return type(exc).__name__
