"""Edges, and the one place where the next node is chosen.

At a node's exit the next node is decided in this order:

1. predicate edges, in the order declared: the first that is true wins;
2. LLM-evaluated edges: for an Agent, the ``transfer_to_<node>`` tool it called
   during its own turn; for any other node, one router request;
3. the unconditional edge (the fallback, AG2's after-work);
4. nothing left: the run ends, and the result says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from flowgraph._callables import MaybeAwaitable, call_inline
from flowgraph._errors import RunError

if TYPE_CHECKING:
    from flowgraph._context import AnyContext
    from flowgraph._run import Run, Visit

Predicate = Callable[["AnyContext"], MaybeAwaitable[Any]]
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


async def decide(run: Run, node: str, exits: Exits, visit: Visit, *, is_agent: bool) -> Edge | None:
    """Choose the edge to leave by, in the documented order; None ends the run."""
    for edge in exits.predicates:
        try:
            taken: object = await call_inline(edge.when, run.ctx)  # type: ignore[arg-type]
        except Exception as exc:
            raise RunError(
                f"the predicate {edge.label!r} of {edge.describe()} raised "
                f"{type(exc).__name__}: {exc}",
                node=edge.source,
            ) from exc
        if taken:
            if visit.handoff is not None and visit.handoff.target != edge.target:
                # The transfer was answered "Transferred to ..."; say what happened instead.
                run.append(
                    {
                        "role": "system",
                        "content": (
                            f"The hand-off to {visit.handoff.target} did not happen: a rule of the "
                            f"flow sent the conversation to {edge.target} instead."
                        ),
                    }
                )
            return edge
    if visit.handoff is not None:
        return visit.handoff
    if exits.llm and not is_agent:
        from flowgraph._router import route

        chosen = await route(run, node, exits.llm)
        if chosen is not None:
            return chosen
    return exits.fallback
