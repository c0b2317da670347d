"""A Flow as a node: a sub-flow runs its own graph on the same run context."""

from __future__ import annotations

from flowgraph._graph.nodes import Node
from flowgraph._graph.plan import DeclaredFlow


class SubFlow(Node):
    """A sub-flow in a parent flow. ``flow.edge(a, other_flow)`` makes one.

    The sub-flow runs from its START on the parent's conversation and context
    variables, with its own hooks and ``max_steps``; reaching its END (or a node with
    no edge to take) returns to the parent, whose edges then decide. Its usage counts
    in the parent run, and its steps are kept in the parent step's ``inner`` record.
    """

    kind = "flow"

    def __init__(self, flow: DeclaredFlow) -> None:
        super().__init__(flow.name)
        self.flow = flow
