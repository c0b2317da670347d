"""Edges: declared hand-offs, grouped per node by how they are decided, and the
``transfer_to_<node>`` tools an agent is offered for its LLM-evaluated edges. The
decision itself is made in the engine (``_engine/decide.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from flowgraph._base.callables import MaybeAwaitable
from flowgraph._base.context import AnyContext
from flowgraph._base.errors import FlowValidationError

Predicate = Callable[[AnyContext], MaybeAwaitable[Any]]
Condition = str | Predicate | None
EdgeKind = Literal["predicate", "llm", "fallback"]
TRANSFER_PREFIX = "transfer_to_"
History = Literal["full", "without_transfer", "summary"]
HISTORIES = ("full", "without_transfer", "summary")


class ContextStr(str):
    """An LLM condition filled from the run context at each request, as AG2's
    ``ContextStr``: ``{name}`` fields are the context's values (a dict's keys or a
    model's fields), e.g. ``fg.ContextStr("{customer} wants a refund")``."""

    __slots__ = ()

    def fill(self, context: Any) -> str:
        values = context if isinstance(context, dict) else vars(context)
        try:
            return self.format_map(values)
        except (KeyError, IndexError, ValueError) as exc:
            raise FlowValidationError(
                f"the condition {str(self)!r} cannot be filled from the context: "
                f"{type(exc).__name__}: {exc}; its fields must be the context's keys"
            ) from exc


@dataclass(frozen=True)
class Edge:
    """A declared hand-off from ``source`` to ``target`` (node names).

    ``when`` is None (unconditional, the fallback), a string (a condition in natural
    language, evaluated by the LLM; a ``ContextStr`` is filled from the context) or a
    callable of the run context (a predicate). ``before``: a predicate checked as an
    agent's turn begins (no request when it holds). ``available``: an LLM condition is
    offered only while this predicate holds.
    """

    source: str
    target: str
    when: Condition = None
    index: int = 0
    before: bool = False
    available: Predicate | None = None
    history: History | None = None
    """What the agent it leads to sees of the conversation (else the flow's
    ``handoff_history``): ``"full"``, ``"without_transfer"`` or ``"summary"``."""

    @property
    def dynamic(self) -> bool:
        """The transfer tool depends on the run context (its text, or whether it is
        offered at all), so it is made anew for each request."""
        return self.available is not None or isinstance(self.when, ContextStr)

    def condition(self, context: Any) -> str:
        """The LLM condition's text, filled from ``context`` if a ``ContextStr``."""
        return self.when.fill(context) if isinstance(self.when, ContextStr) else str(self.when)

    @property
    def kind(self) -> EdgeKind:
        if self.when is None:
            return "fallback"
        return "llm" if isinstance(self.when, str) else "predicate"

    @property
    def label(self) -> str:
        """The condition text, the predicate's name, or '' for a fallback."""
        if self.when is None:
            return ""
        if isinstance(self.when, str):
            return self.when
        return getattr(self.when, "__name__", type(self.when).__name__)

    @property
    def transfer_name(self) -> str:
        return TRANSFER_PREFIX + self.target

    def describe(self) -> str:
        return f"edge {self.source!r} -> {self.target!r}"


class Handoff:
    """What a tool returns to hand the conversation on, as AG2's ``SwarmResult(agent=)``:
    to the node ``to`` right after this tool's result, with no further completion of
    the agent, whatever the model would have said or a predicate would have chosen.
    ``to`` must be the target of an edge from the agent (any kind: the tool chooses
    among the declared ones); another is an error the model reads, naming them.

    Args:
        to: the node (or its name; ``fg.END`` ends the run, where that edge is declared).
        message: the tool's result in the conversation; by default "Transferred to
            <to>."

    Example:
        >>> def escalate(reason: str) -> Handoff:
        ...     '''Escalate to a manager.'''
        ...     return Handoff("manager", message=f"Escalated: {reason}")
    """

    __slots__ = ("message", "to")

    def __init__(self, to: Any, message: str | None = None) -> None:
        name = getattr(to, "name", to)
        if not isinstance(name, str) or not name:
            raise FlowValidationError(
                f"fg.Handoff(to={to!r}): name the node to hand off to, or pass the node"
            )
        if message is not None and not isinstance(message, str):
            raise FlowValidationError(f"fg.Handoff(message={message!r}): the message is text")
        self.to, self.message = name, message

    def __repr__(self) -> str:
        return f"Handoff({self.to!r})"


@dataclass(frozen=True)
class Exits:
    """The out-edges of one node, grouped by how they are decided."""

    predicates: tuple[Edge, ...] = ()
    llm: tuple[Edge, ...] = ()
    fallback: Edge | None = None
    transfer_tools: list[dict[str, Any]] = field(default_factory=list)
    before: tuple[Edge, ...] = ()
    """Predicates checked as an agent's turn begins, not at its end."""
    dynamic: bool = False
    """Some transfer tool depends on the run context: made anew for each request."""

    @classmethod
    def of(cls, edges: list[Edge]) -> Exits:
        llm = tuple(edge for edge in edges if edge.kind == "llm")
        fallbacks = [edge for edge in edges if edge.kind == "fallback"]
        predicates = [edge for edge in edges if edge.kind == "predicate"]
        return cls(
            predicates=tuple(edge for edge in predicates if not edge.before),
            llm=llm,
            fallback=fallbacks[0] if fallbacks else None,
            transfer_tools=[transfer_tool(edge) for edge in llm],
            before=tuple(edge for edge in predicates if edge.before),
            dynamic=any(edge.dynamic for edge in llm),
        )

    def to(self, target: str) -> Edge | None:
        """The declared edge to ``target``, of any kind (a tool's ``Handoff``)."""
        return next((edge for edge in self._all() if edge.target == target), None)

    def targets(self) -> list[str]:
        """The nodes the edges lead to, in the order declared."""
        edges = sorted(self._all(), key=lambda edge: edge.index)
        return list(dict.fromkeys(edge.target for edge in edges))

    def _all(self) -> list[Edge]:
        fallback = [self.fallback] if self.fallback else []
        return [*self.llm, *self.predicates, *self.before, *fallback]

    def transfer(self, tool_name: str) -> Edge | None:
        for edge in self.llm:
            if edge.transfer_name == tool_name:
                return edge
        return None


NO_EXITS = Exits()


def transfer_tool(edge: Edge, context: Any = None) -> dict[str, Any]:
    """The ``transfer_to_<node>`` tool an agent is offered for an LLM-evaluated edge
    (its condition filled from ``context``, if given and a ``ContextStr``)."""
    when = edge.condition(context) if context is not None else edge.when
    action = (
        "End the conversation"
        if edge.target == "END"
        else f"Hand the conversation to {edge.target}"
    )
    return {
        "type": "function",
        "function": {
            "name": edge.transfer_name,
            "description": f"{action}. Use when: {when}",
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        },
    }
