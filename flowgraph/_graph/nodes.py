"""The nodes of a flow: ``Agent``, ``ToolStep``, and the ``START`` and ``END`` markers."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from flowgraph._base.callables import MaybeAwaitable, check_arity
from flowgraph._base.checks import check_count, check_optional, check_seconds
from flowgraph._base.context import AnyContext
from flowgraph._base.errors import FlowValidationError
from flowgraph._base.retry import Retry
from flowgraph._graph.tools import Tool, as_tools
from flowgraph._llm.models import Model, check_model

if TYPE_CHECKING:
    from flowgraph._graph.hooks import AfterCompletion

NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,51}$")
RESERVED = frozenset({"START", "END"})

Instructions = str | Callable[[AnyContext], str]
T = TypeVar("T")


class Node:
    """What every node has: a unique name, and optionally its own model."""

    kind: ClassVar[str] = "node"

    def __init__(self, name: str, *, model: Model | None = None) -> None:
        _check_name(name, type(self).__name__)
        check_model(model, f"{self.kind} {name!r}")
        self.name = name
        self.model = model
        self.hooks: list[AfterCompletion] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class _Terminal(Node):
    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.model = None
        self.hooks = []
        self.kind = kind  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"fg.{self.name}"


START: Node = _Terminal("START", "start")
"""Where a flow begins: ``flow.edge(fg.START, first_node)``."""
END: Node = _Terminal("END", "end")
"""Where a flow ends: ``flow.edge(last_node, fg.END)``."""


class Agent(Node):
    """An LLM with tools. A visit is a tool loop, as openai-node's ``runTools``.

    Each turn requests a completion, runs the tool calls it asks for concurrently
    and answers them, until the model answers without tool calls, hands off with a
    ``transfer_to_<node>`` tool, or ``max_turns`` completions were made.

    Args:
        name: unique in the flow; letters, digits, ``_`` and ``-``.
        instructions: the system message: text, or a function of the ``RunContext``.
        tools: typed Python functions (sync or async), or ``fg.Tool`` objects.
        model: this agent's model; by default the flow's.
        max_turns: the most completions one visit may request.
        after_completion: hooks run after each of this agent's completions.
        retry: how this agent's requests are retried (``fg.Retry``); by default
            the flow's, else the model's (3 attempts).
        request_timeout: seconds each request may take; by default the flow's.
        parallel_tool_calls: False: the model is asked for one call at a time, and a
            turn's calls run one after another, in order; by default as the model's
            ``parallel_tool_calls`` setting says, else at once.
        tool_choice: sent as the request's ``tool_choice``: ``"auto"``, ``"required"``,
            ``"none"``, or the name of one of its tools, which forces that tool: it is
            called once and the visit ends with its result (as openai-node's runTools).

    Example:
        >>> def lookup_order(order_id: str) -> dict:
        ...     '''Look up an order by its id.'''
        ...     return {"id": order_id, "status": "shipped"}
        >>> triage = Agent("triage", instructions="Route the customer.", tools=[lookup_order])
    """

    kind: ClassVar[str] = "agent"

    def __init__(
        self,
        name: str,
        instructions: Instructions = "",
        *,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        model: Model | None = None,
        max_turns: int = 10,
        after_completion: Sequence[AfterCompletion] = (),
        retry: Retry | None = None,
        request_timeout: float | None = None,
        parallel_tool_calls: bool | None = None,
        tool_choice: str | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name, model=model)
        self.tool_choice = _tool_choice(tool_choice, name)
        check_optional(retry, Retry, f"agent {name!r}: retry", "pass fg.Retry(...)")
        check_optional(
            parallel_tool_calls,
            bool,
            f"agent {name!r}: parallel_tool_calls",
            "pass True, False or None (the model's setting)",
        )
        self.parallel_tool_calls = parallel_tool_calls
        self.retry = retry
        self.request_timeout = check_seconds(request_timeout, f"agent {name!r}: request_timeout")
        self.max_turns = check_count(max_turns, f"agent {name!r}: max_turns")
        self.instructions = check_text(instructions, f"the instructions of agent {name!r}")
        self.tools = as_tools(tools, f"agent {name!r}")
        self.hooks.extend(after_completion)

    @property
    def forced_tool(self) -> str | None:
        """The tool its ``tool_choice`` forces, if it names one."""
        return forced_tool(self.tool_choice)

    def after_completion(self, fn: AfterCompletion) -> AfterCompletion:
        """Decorator: run ``fn(hook)`` after each completion of this agent."""
        self.hooks.append(fn)
        return fn

    def system_prompt(self, ctx: AnyContext) -> str:
        return self.instructions(ctx) if callable(self.instructions) else self.instructions


class ToolStep(Node):
    """A Python function of the run context, sync or async. No LLM.

    Its return value is the node's output, and joins the conversation as an
    assistant message named after the node (``None`` adds nothing).

    Args:
        name: unique in the flow.
        fn: ``fn(ctx)`` or ``fn()``; may be ``async``. A blocking function runs in a
            worker thread.
        model: the model that decides this node's LLM-evaluated edges (one router
            request); by default the flow's.
        retry: tries ``fn`` again when it raises one of ``retry.on``; after the last
            try the run fails (and can be resumed).
        timeout: seconds each try may take (a sync function cannot be stopped: its
            thread runs on, but the run goes on without it).

    Example:
        >>> def send_email(ctx):
        ...     return f"emailed {ctx.context['email']}"
        >>> notify = ToolStep("notify", send_email)
    """

    kind: ClassVar[str] = "tool"

    def __init__(
        self,
        name: str,
        fn: Callable[..., MaybeAwaitable[Any]],
        *,
        model: Model | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(name, model=model)
        self.takes_context = check_arity(fn, (0, 1), f"the function of tool step {name!r}") == 1
        self.fn = fn
        check_optional(retry, Retry, f"tool step {name!r}: retry", "pass fg.Retry(on=(...))")
        self.retry = retry
        self.timeout = check_seconds(timeout, f"tool step {name!r}: timeout")


def check_text(value: T, what: str) -> T:
    """``value`` if it is text or a function of the run context; else a
    ``FlowValidationError`` naming ``what``."""
    if callable(value):
        check_arity(value, 1, what)
    elif not isinstance(value, str):
        raise FlowValidationError(
            f"{what} must be text or a function of the run context, got {value!r}"
        )
    return value


def _check_name(name: object, what: str) -> None:
    if not isinstance(name, str) or not NODE_NAME.match(name):
        raise FlowValidationError(
            f"{what} name {name!r} is not allowed: start with a letter or '_', then letters, "
            "digits, '_' or '-', at most 52 characters (it becomes part of a tool name, "
            "transfer_to_<name>)"
        )
    if name in RESERVED:
        raise FlowValidationError(f"{what} name {name!r} is reserved for fg.{name}")


CHOICES = ("auto", "required", "none")


def _tool_choice(choice: object, agent: str) -> str | dict[str, Any] | None:
    """``tool_choice`` as the request sends it: a tool's name becomes OpenAI's form."""
    if choice is None or choice in CHOICES or isinstance(choice, dict):
        return choice
    if isinstance(choice, str) and choice:
        return {"type": "function", "function": {"name": choice}}
    raise FlowValidationError(
        f"agent {agent!r}: tool_choice={choice!r}: give 'auto', 'required', 'none' or the "
        "name of one of its tools"
    )


def forced_tool(choice: object) -> str | None:
    """The function a ``tool_choice`` forces (OpenAI's ``{"type": "function", ...}``)."""
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        return name if isinstance(name, str) else None
    return None
