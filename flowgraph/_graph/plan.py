"""A validated flow, compiled for running: out-edges grouped per node, tools per agent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from flowgraph._base.retry import Retry
from flowgraph._graph.edges import Edge, Exits
from flowgraph._graph.hooks import HookSet
from flowgraph._graph.nodes import Agent, Node
from flowgraph._graph.tools import Tool
from flowgraph._llm.default import default_model
from flowgraph._llm.models import Model

Toolset = tuple[dict[str, Tool], list[dict[str, Any]]]


class DeclaredFlow(Protocol):
    """A declared flow as the plan, validation, drawing and the engine read it
    (``DeclaredFlow``, and so ``fg.Flow``, is one)."""

    name: str
    max_steps: int
    retry: Retry | None
    request_timeout: float | None
    on_max_turns: Literal["go_on", "fail"]
    handoff_history: Literal["full", "without_transfer", "summary"]
    hooks: HookSet

    @property
    def model(self) -> Model | None: ...

    @property
    def nodes(self) -> Mapping[str, Node]: ...

    @property
    def edges(self) -> tuple[Edge, ...]: ...

    def _compile(self) -> Plan:
        """The flow validated and compiled for running (cached until it changes)."""
        ...


class Plan:
    """What the scheduler reads while a run goes on; built once per flow version."""

    def __init__(
        self, flow: DeclaredFlow, nodes: dict[str, Node], edges: Sequence[Edge], hooks: HookSet
    ) -> None:
        self.flow = flow
        self.nodes = nodes
        self.hooks = hooks
        by_source: dict[str, list[Edge]] = {}
        for edge in edges:
            by_source.setdefault(edge.source, []).append(edge)
        self.exits = {source: Exits.of(out) for source, out in by_source.items()}
        self._toolsets: dict[tuple[int, int], Toolset] = {}
        self._models: dict[tuple[int, int], Model] = {}

    def toolset(self, agent: Agent, exits: Exits) -> Toolset:
        """The agent's tools by name, and the schemas it is offered: its tools, then a
        transfer tool per LLM-evaluated edge of ``exits``."""
        key = (id(agent), id(exits))
        found = self._toolsets.get(key)
        if found is None:
            tools = {tool.name: tool for tool in agent.tools}
            schemas = [tool.openai_schema() for tool in agent.tools] + exits.transfer_tools
            found = self._toolsets[key] = (tools, schemas)
        return found

    def model_of(self, node: Node | None, inherited: Model | None = None) -> Model:
        """The node's own model, else the flow's, else ``inherited``, else the default."""
        key = (id(node), id(inherited))
        model = self._models.get(key)
        if model is None:
            own = node.model if node is not None else None
            model = own or self.flow.model or inherited or default_model()
            self._models[key] = model
        return model
