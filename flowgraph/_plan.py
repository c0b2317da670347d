"""A validated flow, compiled for running: out-edges grouped per node, tools per agent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowgraph._edges import Edge, Exits
from flowgraph._hooks import HookSet
from flowgraph._models import Model, default_model
from flowgraph._nodes import Agent, Node
from flowgraph._tools import Tool

Toolset = tuple[dict[str, Tool], list[dict[str, Any]]]

if TYPE_CHECKING:
    from flowgraph._flow import Flow


class Plan:
    """What the scheduler reads while a run goes on; built once per flow version."""

    def __init__(
        self, flow: Flow, nodes: dict[str, Node], edges: Sequence[Edge], hooks: HookSet
    ) -> None:
        self.flow = flow
        self.nodes = nodes
        self.hooks = hooks
        by_source: dict[str, list[Edge]] = {}
        for edge in edges:
            by_source.setdefault(edge.source, []).append(edge)
        self.exits = {source: Exits.of(out) for source, out in by_source.items()}
        self._toolsets: dict[tuple[int, int], Toolset] = {}
        self._models: dict[int, Model] = {}

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

    def model_for(self, node: str) -> Model:
        """The model of the node named ``node`` (see ``model_of``)."""
        return self.model_of(self.nodes.get(node))

    def model_of(self, node: Node | None) -> Model:
        """The node's own model, else the flow's, else the default model."""
        model = self._models.get(id(node))
        if model is None:
            own = node.model if node is not None else None
            model = self._models[id(node)] = own or self.flow.model or default_model()
        return model
