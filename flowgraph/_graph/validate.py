"""Validation: graph checks in networkx, before any request is made.

Every problem is collected, then reported at once in one ``FlowValidationError``
whose lines each name the node or edge and say how to fix it.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import networkx as nx

from flowgraph._base.errors import FlowgraphWarning, FlowValidationError
from flowgraph._graph.edges import TRANSFER_PREFIX, Edge
from flowgraph._graph.human import Human
from flowgraph._graph.nested import NestedChat
from flowgraph._graph.nodes import END, START, Agent, ToolStep
from flowgraph._graph.subflow import SubFlow
from flowgraph._graph.tools import untyped
from flowgraph._llm.default import NO_MODEL, default_model_available

if TYPE_CHECKING:
    from flowgraph._graph.plan import DeclaredFlow


def validate(flow: DeclaredFlow, *, models: bool = True) -> None:
    """Raise ``FlowValidationError`` listing every problem of ``flow``; with
    ``models=False`` its structure only (``needs_model`` says the rest)."""
    problems = list(_problems(flow, within=()))
    if models and (missing := needs_model(flow)):
        problems.append(no_model(missing))
    for notice in _notices(flow) if not problems else ():
        warnings.warn(f"flow {flow.name!r}: {notice}", FlowgraphWarning, stacklevel=4)
    if problems:
        head = f"flow {flow.name!r} is not valid"
        text = (
            f"{head}: {problems[0]}"
            if len(problems) == 1
            else (head + ":\n" + "\n".join(f"- {problem}" for problem in problems))
        )
        raise FlowValidationError(text, problems=problems)


def _problems(flow: DeclaredFlow, within: tuple[int, ...]) -> Iterator[str]:
    yield from _kinds(flow)
    yield from _endpoints(flow)
    yield from _start_and_end(flow)
    yield from _reachability(flow)
    yield from _exits(flow)
    yield from _nested(flow)
    yield from _subflows(flow, (*within, id(flow)))
    yield from _tools(flow)


def needs_model(flow: DeclaredFlow) -> list[str]:
    """The agents and LLM conditions of ``flow`` (and its sub-flows) that have no model
    to ask: none when a default model is available."""
    if default_model_available():
        return []
    return list(_modelless(flow, where="", seen=set()))


def no_model(missing: list[str]) -> str:
    """The problem of ``needs_model``'s answer, said once with its fix."""
    listed = ", ".join(missing[:-1]) + f" and {missing[-1]}" if len(missing) > 1 else missing[0]
    return f"{listed} {'need' if len(missing) > 1 else 'needs'} a model: {NO_MODEL}"


def _modelless(flow: DeclaredFlow, where: str, seen: set[int]) -> Iterator[str]:
    """What needs a model in a flow without one (a parent's model serves its sub-flows)."""
    if flow.model is not None or id(flow) in seen:
        return
    seen.add(id(flow))
    for agent in _agents(flow):
        if agent.model is None:
            yield f"agent {agent.name!r}{where}"
    for edge in flow.edges:
        node = flow.nodes.get(edge.source)
        if (
            edge.kind == "llm"
            and not isinstance(node, Agent)
            and (node is None or node.model is None)
        ):
            yield f"the LLM condition of {edge.describe()}{where}"
    for node in flow.nodes.values():
        if isinstance(node, SubFlow):
            yield from _modelless(node.flow, f" in sub-flow {node.name!r}{where}", seen)


def _notices(flow: DeclaredFlow) -> Iterator[str]:
    """What is legal but often a mistake: said as a ``FlowgraphWarning``."""
    for name in dead_ends(flow):
        yield (
            f"node {name!r} has no out-edge: a run that gets there ends there. If it "
            f"should go on, add flow.edge({name!r}, next_node); to say that it ends, "
            f"add flow.edge({name!r}, fg.END)"
        )
    for agent in _agents(flow):
        for tool in agent.tools:
            for parameter in untyped(tool):
                yield (
                    f"agent {agent.name!r}, tool {tool.name!r}: parameter {parameter!r} has no "
                    f"type, so the model is told nothing of it: annotate it, e.g. "
                    f"{parameter}: str"
                )


def dead_ends(flow: DeclaredFlow) -> list[str]:
    """The flow's nodes with no out-edge: a run that reaches one ends there."""
    sources = {edge.source for edge in flow.edges}
    return [name for name in flow.nodes if name not in sources]


# The kinds of node the engine runs (its VISITS table has a visit for each).
KINDS = (Agent, ToolStep, Human, NestedChat, SubFlow)


def _kinds(flow: DeclaredFlow) -> Iterator[str]:
    for node in flow.nodes.values():
        if not isinstance(node, KINDS):
            yield (
                f"node {node.name!r} is a {type(node).__name__}, which flowgraph cannot run: "
                "make it an fg.Agent, fg.ToolStep, fg.Human, fg.NestedChat or a fg.Flow"
            )


def build_graph(flow: DeclaredFlow) -> nx.MultiDiGraph:
    """The topology as a MultiDiGraph: nodes by name, edges keyed by declaration order."""
    graph = nx.MultiDiGraph(name=flow.name)
    for node in (START, *flow.nodes.values(), END):
        graph.add_node(node.name, kind=node.kind, node=node)
    for edge in flow.edges:
        if edge.source in graph and edge.target in graph:
            graph.add_edge(
                edge.source,
                edge.target,
                key=edge.index,
                kind=edge.kind,
                label=edge.label,
                edge=edge,
            )
    return graph


def _known(flow: DeclaredFlow) -> set[str]:
    return {START.name, END.name, *flow.nodes}


def check_endpoints(flow: DeclaredFlow) -> None:
    """Raise ``FlowValidationError`` if an edge names a node the flow does not have (a
    picture of it would draw a node that is not there, or leave the edge out)."""
    problems = list(_endpoints(flow))
    if problems:
        raise FlowValidationError(
            f"flow {flow.name!r} cannot be drawn: " + "; ".join(problems), problems=problems
        )


def _endpoints(flow: DeclaredFlow) -> Iterator[str]:
    known = _known(flow)
    for edge in flow.edges:
        for name in (edge.source, edge.target):
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                yield (
                    f"{edge.describe()}: there is no node {name!r}{hint}; pass the node "
                    "object to flow.edge(), or add it with flow.add(node)"
                )


def _start_and_end(flow: DeclaredFlow) -> Iterator[str]:
    if not any(edge.source == START.name for edge in flow.edges):
        yield "it has no edge from START: add flow.edge(fg.START, first_node)"
    for edge in flow.edges:
        if edge.target == START.name:
            yield f"{edge.describe()}: no edge may lead into START; route back to a node instead"
        if edge.source == END.name:
            yield f"{edge.describe()}: no edge may leave END, where the run ends"


def _reachability(flow: DeclaredFlow) -> Iterator[str]:
    graph = build_graph(flow)
    reachable = nx.descendants(graph, START.name) | {START.name}
    lost = sorted(name for name in flow.nodes if name not in reachable)
    if lost and any(edge.source == START.name for edge in flow.edges):
        yield (
            f"nodes not reachable from START: {lost}. Add an edge that leads to them, or "
            "leave them out of the flow"
        )


def _exits(flow: DeclaredFlow) -> Iterator[str]:
    seen_llm: set[tuple[str, str]] = set()
    fallbacks: dict[str, list[Edge]] = {}
    for edge in flow.edges:
        if edge.before and not isinstance(flow.nodes.get(edge.source), Agent):
            yield (
                f"{edge.describe()} has before=True: {edge.source!r} is not an agent, and "
                "only an agent's turn has a before; drop before=True (a predicate is checked "
                "at the node's exit)"
            )
        if edge.kind == "llm":
            if (edge.source, edge.target) in seen_llm:
                yield (
                    f"{edge.describe()} has two LLM conditions: merge them into one "
                    "string (the agent gets one transfer tool per target)"
                )
            seen_llm.add((edge.source, edge.target))
        elif edge.kind == "fallback":
            fallbacks.setdefault(edge.source, []).append(edge)
    for source, edges in fallbacks.items():
        if len(edges) > 1:
            targets = [edge.target for edge in edges]
            yield (
                f"node {source!r} has {len(edges)} unconditional edges (to {targets}): "
                "parallel branches are not supported yet; give all but one a condition "
                "(when=...)"
            )


def _nested(flow: DeclaredFlow) -> Iterator[str]:
    for node in flow.nodes.values():
        if isinstance(node, NestedChat):
            yield from node.problems()


def _subflows(flow: DeclaredFlow, within: tuple[int, ...]) -> Iterator[str]:
    for node in flow.nodes.values():
        if not isinstance(node, SubFlow):
            continue
        if id(node.flow) in within:
            yield f"sub-flow {node.name!r} contains itself: a flow cannot run inside itself"
            continue
        for problem in _problems(node.flow, within):
            yield f"sub-flow {node.name!r}: {problem}"


def _tools(flow: DeclaredFlow) -> Iterator[str]:
    for agent in _agents(flow):
        forced, tools = agent.forced_tool, [tool.name for tool in agent.tools]
        if forced is not None and forced not in tools:
            yield (
                f"agent {agent.name!r}: tool_choice names {forced!r}, which is not one of its "
                f"tools: {', '.join(tools) or 'it has none'}"
            )
        names: set[str] = set()
        for tool in agent.tools:
            try:
                tool.openai_schema()  # builds the schema, raising if it cannot
            except FlowValidationError as exc:
                yield f"agent {agent.name!r}: {exc}"
                continue
            if tool.name in names:
                yield (
                    f"agent {agent.name!r} has two tools named {tool.name!r}: rename one "
                    "with fg.Tool(fn, name=...)"
                )
            if tool.name.startswith(TRANSFER_PREFIX):
                yield (
                    f"agent {agent.name!r}: tool name {tool.name!r} is reserved for "
                    "hand-offs; rename it with fg.Tool(fn, name=...)"
                )
            names.add(tool.name)


def _agents(flow: DeclaredFlow) -> Iterator[Agent]:
    """The flow's agents, those of its nested chats included (each once)."""
    seen: set[int] = set()
    for node in flow.nodes.values():
        inner = node.agents() if isinstance(node, NestedChat) else [node]
        for agent in inner:
            if isinstance(agent, Agent) and id(agent) not in seen:
                seen.add(id(agent))
                yield agent
