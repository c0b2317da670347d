"""Edges: declared hand-offs, grouped per node by how they are decided, and the
``transfer_to_<node>`` tools an agent is offered for its LLM-evaluated edges. The
decision itself is made in the engine (``_engine/decide.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from flowgraph._base.callables import MaybeAwaitable
from flowgraph._base.context import AnyContext

Predicate = Callable[[AnyContext], MaybeAwaitable[Any]]
Condition = str | Predicate | None
EdgeKind = Literal["predicate", "llm", "fallback"]
TRANSFER_PREFIX = "transfer_to_"


@dataclass(frozen=True)
class Edge:
    """A declared hand-off from ``source`` to ``target`` (node names).

    ``when`` is None (unconditional, the fallback), a string (a condition in natural
    language, evaluated by the LLM) or a callable of the run context (a predicate).
    """

    source: str
    target: str
    when: Condition = None
    index: int = 0

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


@dataclass(frozen=True)
class Exits:
    """The out-edges of one node, grouped by how they are decided."""

    predicates: tuple[Edge, ...] = ()
    llm: tuple[Edge, ...] = ()
    fallback: Edge | None = None
    transfer_tools: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, edges: list[Edge]) -> Exits:
        llm = tuple(edge for edge in edges if edge.kind == "llm")
        fallbacks = [edge for edge in edges if edge.kind == "fallback"]
        return cls(
            predicates=tuple(edge for edge in edges if edge.kind == "predicate"),
            llm=llm,
            fallback=fallbacks[0] if fallbacks else None,
            transfer_tools=[transfer_tool(edge) for edge in llm],
        )

    def transfer(self, tool_name: str) -> Edge | None:
        for edge in self.llm:
            if edge.transfer_name == tool_name:
                return edge
        return None


NO_EXITS = Exits()


def transfer_tool(edge: Edge) -> dict[str, Any]:
    """The ``transfer_to_<node>`` tool an agent is offered for an LLM-evaluated edge."""
    action = (
        "End the conversation"
        if edge.target == "END"
        else f"Hand the conversation to {edge.target}"
    )
    return {
        "type": "function",
        "function": {
            "name": edge.transfer_name,
            "description": f"{action}. Use when: {edge.when}",
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
        },
    }
