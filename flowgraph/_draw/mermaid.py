"""A flow as Mermaid flowchart text: nested chats and sub-flows as subgraphs, and where
a run stopped short of END (failed, or waiting for a reply) in the look of the DOT
picture."""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

from flowgraph._base.errors import UsageError
from flowgraph._draw.dot import DETAILS, DIRECTIONS, STOPPED, clean, predicate_text
from flowgraph._draw.overlay import Overlay
from flowgraph._graph.nested import NestedChat
from flowgraph._graph.nodes import END, START, Node
from flowgraph._graph.subflow import SubFlow
from flowgraph._graph.validate import check_endpoints, dead_ends

if TYPE_CHECKING:
    from flowgraph._graph.plan import DeclaredFlow

ARROWS = {"llm": "-.->", "predicate": "-->", "fallback": "-->"}
SHAPES = {
    "start": '(("{}"))',
    "end": '((("{}")))',
    "tool": '[["{}"]]',
    "nested": '{{{{"{}"}}}}',
    "flow": '[/"{}"/]',
    "human": '[\\"{}"\\]',
    "agent": '("{}")',
}
ESCAPES = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "\n": " ", "\r": " ", "|": "#124;"}


def to_mermaid(
    flow: DeclaredFlow,
    *,
    direction: str = "TB",
    detail: str = "full",
    overlay: Overlay | None = None,
) -> str:
    """The flow as a Mermaid flowchart (paste it into Markdown); with ``overlay``, where
    the run stopped is styled and noted."""
    if direction not in DIRECTIONS or detail not in DETAILS:
        raise UsageError(f"use direction in {DIRECTIONS} and detail in {DETAILS}")
    check_endpoints(flow)
    lines = [f"flowchart {'TD' if direction == 'TB' else direction}"]
    writer = _Writer(lines, detail == "full", overlay or Overlay())
    writer.flow(flow, prefix="", indent="    ")
    lines.extend(writer.styles)
    return "\n".join(lines) + "\n"


class _Writer:
    def __init__(self, lines: list[str], full: bool, overlay: Overlay) -> None:
        self.lines, self.full, self.overlay = lines, full, overlay
        self.ids: dict[str, str] = {}
        self.styles: list[str] = []
        """``style`` statements, written after every node and subgraph is declared."""

    def ident(self, path: str) -> str:
        """A Mermaid-safe id per node path, unique even where names differ only in
        characters Mermaid does not allow ('end' and friends are keywords: prefix them)."""
        if path not in self.ids:
            base = "n_" + re.sub(r"[^A-Za-z0-9_]", "_", path)
            ident, count = base, 1
            while ident in self.ids.values():
                count += 1
                ident = f"{base}_{count}"
            self.ids[path] = ident
        return self.ids[path]

    def flow(self, flow: DeclaredFlow, prefix: str, indent: str) -> None:
        for node in (START, *flow.nodes.values(), END):
            self.node(flow, node, prefix, indent)
        branching = {edge.source for edge in flow.edges if edge.kind != "fallback"}
        for edge in flow.edges:
            if edge.kind == "llm":
                text = edge.label
            elif edge.kind == "predicate":
                text = predicate_text(edge)
            else:  # as DOT says it: the edge taken when no condition held
                text = "otherwise" if edge.source in branching else ""
            if edge.history is not None:  # what the next agent sees of the conversation
                text = f"{text} · history: {edge.history}" if text else f"history: {edge.history}"
            label = f'|"{_escape(text)}"|' if text else ""
            source, target = self.ident(prefix + edge.source), self.ident(prefix + edge.target)
            self.lines.append(f"{indent}{source} {ARROWS[edge.kind]}{label} {target}")
        end = self.ident(prefix + END.name)
        for name in dead_ends(flow):  # a run that gets there ends there
            self.lines.append(f'{indent}{self.ident(prefix + name)} -.->|"ends here"| {end}')

    def node(self, flow: DeclaredFlow, node: Node, prefix: str, indent: str) -> None:
        path = prefix + node.name
        ident = self.ident(path)
        if self.full and isinstance(node, NestedChat) and node.chats:
            title = self.label(path, f"{node.name} · nested chat", cluster=True)
            self.lines.append(f'{indent}subgraph {ident} ["{title}"]')
            chats = [self.ident(f"{path}/chat{index}") for index in range(len(node.chats))]
            for index, (chat_id, chat) in enumerate(zip(chats, node.chats, strict=True)):
                recipient = getattr(chat.recipient, "name", "?")
                self.lines.append(f'{indent}    {chat_id}("{index + 1}. {_escape(recipient)}")')
            for first, second in itertools.pairwise(chats):
                self.lines.append(f"{indent}    {first} -. summary .-> {second}")
            self.lines.append(f"{indent}end")
        elif self.full and isinstance(node, SubFlow):
            title = self.label(path, f"{node.name} · sub-flow", cluster=True)
            self.lines.append(f'{indent}subgraph {ident} ["{title}"]')
            self.flow(node.flow, path + "/", indent + "    ")
            self.lines.append(f"{indent}end")
        else:
            self.lines.append(
                indent + ident + SHAPES[node.kind].format(self.label(path, node.name))
            )

    def label(self, path: str, name: str, cluster: bool = False) -> str:
        """The escaped label of the node at ``path``; where the run stopped there, with
        its note, and its style queued."""
        stop = self.overlay.stop(path)
        if stop is None:
            return _escape(name)
        look = STOPPED[stop]
        rules = [f"stroke:{look.color}", "stroke-width:3px"]
        if "dashed" in look.style.split(","):
            rules.append("stroke-dasharray:6 3")
        fill = look.cluster_fill if cluster else look.fill
        if fill is not None:
            rules.append(f"fill:{fill}")
        self.styles.append(f"    style {self.ident(path)} {','.join(rules)}")
        note = self.overlay.note(path)
        return _escape(name) + (f"<br/>{_escape(note)}" if note else "")


def _escape(text: str) -> str:
    return "".join(ESCAPES.get(char, char) for char in clean(text))
