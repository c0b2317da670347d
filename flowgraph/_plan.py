"""A validated flow, compiled for running: out-edges grouped per node, tools per agent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowgraph._edges import NO_EXITS, Edge, Exits
from flowgraph._hooks import HookSet
from flowgraph._models import Model, default_model
from flowgraph._nodes import Agent, Node
from flowgraph._tools import Tool

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
        self.agent_tools: dict[str, tuple[dict[str, Tool], list[dict[str, Any]]]] = {
            node.name: self._tools_of(node) for node in nodes.values() if isinstance(node, Agent)
        }
        self._models: dict[str, Model] = {}

    def _tools_of(self, agent: Agent) -> tuple[dict[str, Tool], list[dict[str, Any]]]:
        tools = {tool.name: tool for tool in agent.tools}
        exits = self.exits.get(agent.name, NO_EXITS)
        schemas = [tool.openai_schema() for tool in agent.tools] + exits.transfer_tools
        return tools, schemas

    def model_for(self, node: str) -> Model:
        """The node's own model, else the flow's, else the default model."""
        model = self._models.get(node)
        if model is None:
            own = self.nodes[node].model if node in self.nodes else None
            model = own or self.flow.model or default_model()
            self._models[node] = model
        return model
