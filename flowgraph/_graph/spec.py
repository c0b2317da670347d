"""What a user declares: a flow's nodes, edges, hooks and settings, and the plan
compiled from them once they are valid. ``Flow`` (the facade) adds running, stored
runs and drawing on top; a ``SubFlow`` node runs another declared flow inside one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from typing_extensions import Self

from flowgraph._base.callables import check_arity
from flowgraph._base.checks import check_count, check_optional, check_seconds
from flowgraph._base.errors import FlowValidationError
from flowgraph._base.retry import Retry
from flowgraph._graph.edges import (
    HISTORIES,
    Condition,
    ContextStr,
    Edge,
    History,
    Predicate,
)
from flowgraph._graph.hooks import AfterCompletion, EventName, Hooks, HookSet, Observer
from flowgraph._graph.nodes import END, START, Node
from flowgraph._graph.plan import Plan
from flowgraph._graph.subflow import SubFlow
from flowgraph._graph.validate import build_graph, validate
from flowgraph._llm.models import Model, check_model

if TYPE_CHECKING:
    import networkx as nx


DEFAULT_MAX_STEPS = 100
F = TypeVar("F", bound=Callable[..., Any])


class FlowSpec:
    """A flow as declared: nodes, edges, hooks and settings (``fg.Flow`` is one).

    Build it with ``edge()``; ``validate()`` checks it; the plan it compiles to is
    what the engine runs.
    """

    def __init__(
        self,
        name: str,
        *,
        model: Model | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        retry: Retry | None = None,
        request_timeout: float | None = None,
        deadline: float | None = None,
        on_max_turns: Literal["go_on", "fail"] = "go_on",
        handoff_history: History = "full",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise FlowValidationError(f"a flow's name must be non-empty text, got {name!r}")
        if on_max_turns not in ("go_on", "fail"):
            raise FlowValidationError(
                f"flow {name!r}: on_max_turns must be 'go_on' or 'fail', got {on_max_turns!r}"
            )
        self.on_max_turns = on_max_turns
        check_history(handoff_history, f"flow {name!r}: handoff_history")
        self.handoff_history = handoff_history
        self.name = name
        self.model = model
        self.max_steps = check_count(max_steps, f"flow {name!r}: max_steps")
        check_optional(retry, Retry, f"flow {name!r}: retry", "pass fg.Retry(...)")
        self.retry = retry
        self.request_timeout = check_seconds(request_timeout, f"flow {name!r}: request_timeout")
        self.deadline = check_seconds(deadline, f"flow {name!r}: deadline")
        self.hooks = HookSet()
        self._nodes: dict[str, Node] = {}
        self._edges: list[Edge] = []
        self._subflows: dict[int, SubFlow] = {}
        self._plan: Plan | None = None

    def __repr__(self) -> str:
        return f"Flow({self.name!r}, nodes={list(self._nodes)})"

    @property
    def model(self) -> Model | None:
        """The model of every agent and router that names none."""
        return self._model

    @model.setter
    def model(self, model: Model | None) -> None:
        check_model(model, f"flow {self.name!r}")
        self._model = model
        self._plan = None  # the plan caches each node's model

    # -- building -------------------------------------------------------------------

    @property
    def nodes(self) -> Mapping[str, Node]:
        """The nodes by name (START and END are not listed)."""
        return self._nodes

    @property
    def edges(self) -> tuple[Edge, ...]:
        """The edges, in the order declared."""
        return tuple(self._edges)

    def add(self, *nodes: Node | FlowSpec) -> Self:
        """Add nodes (``edge()`` adds the nodes it is given, too)."""
        for node in nodes:
            self._register(node)
        return self

    def edge(
        self,
        source: Node | FlowSpec | str,
        target: Node | FlowSpec | str,
        when: Condition = None,
        *,
        before: bool = False,
        available: Predicate | None = None,
        history: History | None = None,
    ) -> Edge:
        """Declare a hand-off from ``source`` to ``target``.

        Args:
            source: a node, ``fg.START``, a flow (run as a sub-flow), or a node's name.
            target: a node, ``fg.END``, a flow (run as a sub-flow), or a node's name.
            when: None for the unconditional fallback; a string for a condition the
                LLM evaluates (``fg.ContextStr`` to fill it from the context); a
                function of the ``RunContext`` for a predicate.
            before: (a predicate of an agent's edge) check it as the agent's turn
                begins: when it holds, the run moves on with no request.
            available: (an LLM condition) offer the hand-off only while this function
                of the ``RunContext`` holds.
            history: what an agent it leads to sees of the conversation (by default
                the flow's ``handoff_history``): ``"full"``; ``"without_transfer"``,
                without the transfer calls and their answers; ``"summary"``, the
                conversation before the hand-off folded into one message.
        """
        names = [end if isinstance(end, str) else self._register(end) for end in (source, target)]
        when = _check_condition(names[0], names[1], when)
        _check_options(names[0], names[1], when, before, available)
        check_history(history, f"edge {names[0]!r} -> {names[1]!r}", optional=True)
        edge = Edge(
            names[0],
            names[1],
            when,
            index=len(self._edges),
            before=before,
            available=available,
            history=history,
        )
        self._edges.append(edge)
        self._plan = None
        return edge

    def _register(self, node: Node | FlowSpec) -> str:
        if isinstance(node, FlowSpec):
            node = self._subflows.setdefault(id(node), SubFlow(node))
        if not isinstance(node, Node):
            raise FlowValidationError(
                f"flow {self.name!r}: {node!r} is not a node; use fg.Agent, fg.ToolStep, "
                "fg.NestedChat, a fg.Flow, fg.START or fg.END"
            )
        if node is START or node is END:
            return node.name
        known = self._nodes.setdefault(node.name, node)
        if known is not node:
            raise FlowValidationError(
                f"flow {self.name!r} has two different nodes named {node.name!r} ({known!r} "
                f"and {node!r}): node names must be unique; rename one"
            )
        self._plan = None
        return node.name

    # -- hooks ----------------------------------------------------------------------

    def after_completion(self, fn: AfterCompletion) -> AfterCompletion:
        """Decorator: run ``fn(hook)`` after every agent completion and at every node
        exit. The hook may change ``hook.context`` and ``hook.inject(...)`` messages."""
        self.hooks.after_completion.append(fn)
        return fn

    @overload
    def on(self, event: EventName) -> Callable[[F], F]: ...
    @overload
    def on(self, event: EventName, fn: Observer) -> Observer: ...
    def on(self, event: EventName, fn: Observer | None = None) -> Any:
        """Observe one event: ``node_enter``, ``node_exit``, ``handoff``,
        ``tool_start``, ``tool_end`` or ``error``. Usable as a decorator."""
        if fn is None:
            return lambda f: self.on(event, f)
        self.hooks.on(event, fn)
        return fn

    def add_hooks(self, hooks: Hooks) -> Hooks:
        """Register a ``Hooks`` object: each method it overrides observes its event."""
        self.hooks.add(hooks)
        return hooks

    # -- validating -----------------------------------------------------------------

    @property
    def graph(self) -> nx.MultiDiGraph:
        """The topology as a ``networkx.MultiDiGraph`` (a fresh copy: edit it freely)."""
        return build_graph(self)

    def validate(self) -> None:
        """Check the flow before any request; raise ``FlowValidationError`` if broken."""
        self._compile()

    def _compile(self) -> Plan:
        """The flow validated and compiled for running (cached until it changes)."""
        if self._plan is None:
            validate(self)
            self._plan = Plan(self, dict(self._nodes), self.edges, self.hooks)
        return self._plan


def _check_options(
    source: str, target: str, when: Condition, before: bool, available: Predicate | None
) -> None:
    where = f"edge {source!r} -> {target!r}"
    if before is not False and (before is not True or not callable(when)):
        raise FlowValidationError(
            f"{where}: before=True needs a predicate (when=a function of the context), "
            "checked as the agent's turn begins"
        )
    if available is not None:
        if not isinstance(when, str):
            raise FlowValidationError(
                f"{where}: available= applies to an LLM condition (when='...'): it says "
                "when the hand-off is offered"
            )
        check_arity(available, 1, f"the available= predicate of {where}")


def _check_condition(source: str, target: str, when: Condition) -> Condition:
    where = f"edge {source!r} -> {target!r}"
    if when is None:
        return None
    if isinstance(when, str):
        if not when.strip():
            raise FlowValidationError(
                f"{where}: the condition is empty; write it in words, "
                "or pass when=None for an unconditional edge"
            )
        return ContextStr(when.strip()) if isinstance(when, ContextStr) else when.strip()
    check_arity(when, 1, f"the predicate of {where}")
    return when


def check_history(history: object, what: str, optional: bool = False) -> None:
    if (history is None and optional) or history in HISTORIES:
        return
    raise FlowValidationError(
        f"{what}: history must be one of {', '.join(map(repr, HISTORIES))}, got {history!r}"
    )
