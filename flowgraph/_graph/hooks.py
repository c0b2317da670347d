"""Hooks: ``after_completion`` (may inject messages) and events for observing a run.

``after_completion`` runs at two kinds of safe points: after every completion of
an agent, once that completion's tool calls are answered; and at every node's
exit, before its edges are evaluated. Injected messages land at once, after the
tool results and before the next request, so the tool-call pairing holds.

The other events are for observing and tracing; subclass ``Hooks`` and override
what you need, or register one function with ``flow.on(event)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flowgraph._base.callables import call_inline
from flowgraph._base.context import AnyContext, Usage
from flowgraph._base.errors import FlowValidationError
from flowgraph._base.failures import RunError
from flowgraph._base.messages import HistoryError, Message, check_injectable

EventName = Literal["node_enter", "node_exit", "handoff", "tool_start", "tool_end", "error"]
EVENTS: tuple[EventName, ...] = (
    "node_enter",
    "node_exit",
    "handoff",
    "tool_start",
    "tool_end",
    "error",
)


class HookContext:
    """What an ``after_completion`` hook sees, and its one way to add messages.

    Example:
        >>> async def research(hook: HookContext) -> None:
        ...     if "refund" in (hook.completion or {}).get("content", ""):
        ...         hook.context["mentions_refund"] = True
        ...         hook.inject({"role": "system", "content": "Policy: refunds within 30 days."})

    Attributes:
        point: ``"completion"`` after an agent's completion, ``"node_exit"`` at a
            node's exit.
        node: the name of the node.
        completion: the assistant message just produced (``None`` at a node exit).
        run_id, step: where the run is.
    """

    def __init__(
        self,
        ctx: AnyContext,
        step: int,
        node: str,
        point: Literal["completion", "node_exit"],
        completion: Message | None,
    ) -> None:
        self._ctx = ctx
        self.node = node
        self.point = point
        self.completion = completion
        self.run_id = ctx.run_id
        self.step = step

    @property
    def messages(self) -> list[Message]:
        """The conversation so far (read it; add to it only with ``inject``)."""
        return self._ctx.messages

    @property
    def context(self) -> Any:
        """The run's context variables (a dict or a pydantic model); change them freely."""
        return self._ctx.context

    @context.setter
    def context(self, value: Any) -> None:
        self._ctx.context = value

    @property
    def usage(self) -> Usage:
        """Requests and tokens so far in the run."""
        return self._ctx.usage

    def inject(self, *messages: Message) -> None:
        """Add messages to the conversation, before the next request.

        Allowed roles: system, developer, user, assistant (without tool calls).
        """
        try:
            checked = [check_injectable(message) for message in messages]
        except HistoryError as exc:
            raise RunError(f"node {self.node!r}: {exc}", node=self.node) from exc
        self._ctx.messages.extend(checked)


AfterCompletion = Callable[[HookContext], Awaitable[None] | None]


@dataclass(frozen=True)
class NodeEvent:
    """A node was entered, or exited (then with its output and duration)."""

    run_id: str
    step: int
    node: str
    kind: str
    output: Any = None
    seconds: float = 0.0
    usage: Usage | None = None


@dataclass(frozen=True)
class HandoffEvent:
    """The run moves along an edge: ``kind`` is predicate, llm or fallback."""

    run_id: str
    step: int
    source: str
    target: str
    kind: str
    condition: str


@dataclass(frozen=True)
class ToolEvent:
    """A tool call starts, or ends (then with its result text and whether it failed)."""

    run_id: str
    step: int
    node: str
    tool: str
    call_id: str
    arguments: str
    result: str | None = None
    failed: bool = False


@dataclass(frozen=True)
class ErrorEvent:
    """The run failed at ``node`` with ``error``."""

    run_id: str
    step: int
    node: str | None
    error: BaseException


Observer = Callable[[Any], Awaitable[None] | None]


class Hooks:
    """Observe a run: override any of these; sync or async methods both work.

    Example:
        >>> class Trace(Hooks):
        ...     def __init__(self):
        ...         self.seen = []
        ...     def on_node_enter(self, event: NodeEvent) -> None:
        ...         self.seen.append(event.node)
    """

    def on_node_enter(self, event: NodeEvent) -> Awaitable[None] | None:
        """A node's visit begins."""

    def on_node_exit(self, event: NodeEvent) -> Awaitable[None] | None:
        """A node's visit ended; its edges are evaluated next."""

    def on_handoff(self, event: HandoffEvent) -> Awaitable[None] | None:
        """The run moves along an edge."""

    def on_tool_start(self, event: ToolEvent) -> Awaitable[None] | None:
        """A tool call is about to run."""

    def on_tool_end(self, event: ToolEvent) -> Awaitable[None] | None:
        """A tool call ended (its result or error text is in the event)."""

    def on_error(self, event: ErrorEvent) -> Awaitable[None] | None:
        """The run failed."""


@dataclass
class HookSet:
    """The hooks of one flow, by event; only overridden methods are kept."""

    after_completion: list[AfterCompletion] = field(default_factory=list)
    observers: dict[str, list[Observer]] = field(default_factory=dict)

    def add(self, hooks: Hooks) -> None:
        for name in EVENTS:
            method = getattr(hooks, f"on_{name}")
            if getattr(method, "__func__", None) is not getattr(Hooks, f"on_{name}"):
                self.on(name, method)

    def on(self, name: str, fn: Observer) -> None:
        if name not in EVENTS:
            raise FlowValidationError(f"unknown event {name!r}: use one of {', '.join(EVENTS)}")
        self.observers.setdefault(name, []).append(fn)

    def with_hooks(self, extra: Sequence[Hooks]) -> HookSet:
        """This set plus ``extra`` observers, for one run; this set is unchanged."""
        if not extra:
            return self
        merged = HookSet(
            self.after_completion, {name: list(fns) for name, fns in self.observers.items()}
        )
        for hooks in extra:
            merged.add(hooks)
        return merged

    def wants(self, name: EventName) -> bool:
        return name in self.observers

    async def emit(self, name: EventName, event: object, note: Callable[[str], None]) -> None:
        """Call the observers of ``name``. Observers watch and do not decide: one that
        raises is reported (``note``, and a ``RuntimeWarning``) and the run goes on."""
        for fn in self.observers.get(name, ()):
            try:
                await call_inline(fn, event)
            except Exception as exc:
                where = getattr(event, "node", None) or getattr(event, "source", None)
                text = (
                    f"an observer {getattr(fn, '__name__', repr(fn))!r} of {name} raised "
                    f"{type(exc).__name__}: {exc} (at node {where!r}); the run went on"
                )
                note(text)
                warnings.warn(text, RuntimeWarning, stacklevel=2)
