"""Drawing flows offline: graphviz DOT (rendered by the ``dot`` binary) and Mermaid.

Every label is an HTML-like label built from escaped text, so a condition holding
quotes, angle brackets, backslashes or DOT syntax cannot break or inject into the
picture.
"""

from __future__ import annotations

import html
import textwrap
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import graphviz

from flowgraph._edges import Edge
from flowgraph._errors import ConfigurationError, UsageError
from flowgraph._nested import NestedChat
from flowgraph._nodes import END, START, Agent, Node, ToolStep
from flowgraph._subflow import SubFlow

if TYPE_CHECKING:
    from flowgraph._flow import Flow
    from flowgraph._result import RunResult

FORMATS = ("png", "svg", "pdf", "dot")
FONT = "Helvetica"
NODE_STYLE = {
    "agent": {
        "shape": "box",
        "style": "rounded,filled",
        "fillcolor": "#dbeafe",
        "color": "#1e40af",
    },
    "tool": {"shape": "component", "style": "filled", "fillcolor": "#fef3c7", "color": "#92400e"},
    "nested": {
        "shape": "box",
        "style": "rounded,filled,dashed",
        "fillcolor": "#ede9fe",
        "color": "#5b21b6",
    },
    "flow": {"shape": "box3d", "style": "filled", "fillcolor": "#dcfce7", "color": "#166534"},
    "start": {
        "shape": "circle",
        "style": "filled",
        "fillcolor": "#111827",
        "fontcolor": "white",
        "width": "0.8",
        "fixedsize": "true",
    },
    "end": {
        "shape": "doublecircle",
        "style": "filled",
        "fillcolor": "#111827",
        "fontcolor": "white",
        "width": "0.7",
        "fixedsize": "true",
    },
}
EDGE_STYLE = {
    "llm": {"style": "dashed", "color": "#1d4ed8", "fontcolor": "#1d4ed8"},
    "predicate": {"style": "solid", "color": "#15803d", "fontcolor": "#15803d"},
    "fallback": {"style": "solid", "color": "#6b7280", "fontcolor": "#6b7280"},
}
TAKEN = {"color": "#dc2626", "fontcolor": "#dc2626", "penwidth": "2.5"}


def flow_digraph(flow: Flow, *, direction: str = "TB") -> graphviz.Digraph:
    """The flow as a ``graphviz.Digraph``: node shapes by kind, edge styles by kind."""
    dot = graphviz.Digraph(flow.name)
    dot.attr(
        rankdir=direction,
        fontname=FONT,
        nodesep="0.5",
        ranksep="0.6",
        label=_html(_text(f"flow: {flow.name}")),
        labelloc="t",
    )
    dot.attr("node", fontname=FONT, fontsize="12")
    dot.attr("edge", fontname=FONT, fontsize="10", arrowsize="0.8")
    for node in (START, *flow.nodes.values(), END):
        dot.node(node.name, _node_label(node, flow), **NODE_STYLE[node.kind])
    for edge in flow.edges:
        dot.edge(edge.source, edge.target, _edge_label(edge, flow), **EDGE_STYLE[edge.kind])
    return dot


def render_flow(flow: Flow, path: str | None, *, format: str | None = None) -> graphviz.Digraph:
    """Draw ``flow``; write it to ``path`` if given."""
    dot = flow_digraph(flow)
    if path is not None:
        _write(dot, path, format)
    return dot


def render_run(
    flow: Flow | None, result: RunResult, path: str | None, *, format: str | None = None
) -> graphviz.Digraph:
    """Draw ``flow`` with the run's path over it: taken edges in red, numbered by step."""
    if flow is None:
        raise UsageError("this result has no flow attached; render it with flow.render()")
    dot = graphviz.Digraph(flow.name)
    dot.attr(
        rankdir="TB",
        fontname=FONT,
        labelloc="t",
        label=_html(_text(f"run {result.run_id[:8]}: {result.status}")),
    )
    dot.attr("node", fontname=FONT, fontsize="12")
    dot.attr("edge", fontname=FONT, fontsize="10", arrowsize="0.8")
    steps: dict[str, list[int]] = {}
    for record in result.trace:
        steps.setdefault(record.node, []).append(record.step)
    for node in (START, *flow.nodes.values(), END):
        style = dict(NODE_STYLE[node.kind])
        label = _node_label(node, flow, steps.get(node.name))
        if node.name in steps or (node is START and result.path):
            style.update(color="#dc2626", penwidth="2.5")
        if result.status == "failed" and result.path and node.name == result.path[-1]:
            style.update(fillcolor="#fecaca", color="#991b1b", penwidth="3", style="filled,bold")
        dot.node(node.name, label, **style)
    taken = _taken(result)
    for edge in flow.edges:
        attrs = dict(EDGE_STYLE[edge.kind])
        label = _edge_label(edge, flow)
        count = taken.pop((edge.source, edge.target), 0)
        if count:
            attrs.update(TAKEN)
            label = _html(_edge_text(edge, flow) + f"<br/><b>taken {count}×</b>")
        dot.edge(edge.source, edge.target, label, **attrs)
    if path is not None:
        _write(dot, path, format)
    return dot


def _taken(result: RunResult) -> Counter[tuple[str, str]]:
    moves: Counter[tuple[str, str]] = Counter()
    if result.path:
        moves[(START.name, result.path[0])] += 1
    for record in result.trace:
        if record.next is not None:
            moves[(record.node, record.next)] += 1
    return moves


def _write(dot: graphviz.Digraph, path: str, format: str | None) -> None:
    target = Path(path)
    fmt = (format or target.suffix.lstrip(".") or "png").lower()
    if fmt not in FORMATS:
        raise UsageError(f"cannot render {path!r} as {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "dot":
        target.write_text(dot.source)
        return
    try:
        data = dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound as exc:
        raise ConfigurationError(
            "graphviz's `dot` program is not installed: install it with "
            "`apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) "
            "or `conda install graphviz`"
        ) from exc
    target.write_bytes(data)


def _node_label(node: Node, flow: Flow, steps: list[int] | None = None) -> str:
    lines = [f"<b>{_text(node.name)}</b>"]
    if isinstance(node, Agent):
        model = node.model or flow.model
        lines.append(
            f'<font point-size="10">{_text(model.name if model else "default model")}</font>'
        )
        if node.tools:
            names = ", ".join(tool.name for tool in node.tools)
            lines.append(f'<font point-size="10">tools: {_wrap(names, 30)}</font>')
    elif isinstance(node, NestedChat):
        for index, chat in enumerate(node.chats, 1):
            recipient = chat.recipient.name if chat.recipient else "?"
            method = chat.summary if isinstance(chat.summary, str) else "callable"
            lines.append(
                f'<font point-size="10">{index}. {_text(recipient)} · {_text(method)}</font>'
            )
    elif isinstance(node, SubFlow):
        count = len(node.flow.nodes)
        lines.append(f'<font point-size="10">sub-flow, {count} node{"s" * (count != 1)}</font>')
    elif isinstance(node, ToolStep):
        fn_name = getattr(node.fn, "__name__", "function")
        lines.append(f'<font point-size="10">{_text(fn_name)}()</font>')
    if steps:
        lines.append(f'<font point-size="10" color="#dc2626">step {_steps(steps)}</font>')
    return _html("<br/>".join(lines))


def _edge_label(edge: Edge, flow: Flow) -> str:
    text = _edge_text(edge, flow)
    return _html(text) if text else ""


def _edge_text(edge: Edge, flow: Flow) -> str:
    if edge.kind == "llm":
        return _wrap(str(edge.when), 28)
    if edge.kind == "predicate":
        return f"if {_text(edge.label)}()"
    others = any(e.source == edge.source and e.kind != "fallback" for e in flow.edges)
    return "otherwise" if others else ""


def _steps(steps: list[int]) -> str:
    shown = ", ".join(str(step) for step in steps[:6])
    return shown + (", …" if len(steps) > 6 else "")


def _wrap(text: str, width: int) -> str:
    return "<br/>".join(_text(line) for line in textwrap.wrap(text, width) or [""])


def _text(text: str) -> str:
    return html.escape(text, quote=True)


def _html(markup: str) -> str:
    return f"<{markup}>"


def to_mermaid(flow: Flow) -> str:
    """The flow as a Mermaid flowchart (text; paste it into Markdown)."""
    lines = ["flowchart TD"]
    for node in (START, *flow.nodes.values(), END):
        lines.append(f"    {_mermaid_node(node)}")
    arrows = {"llm": "-.->", "predicate": "-->", "fallback": "-->"}
    for edge in flow.edges:
        text = (
            edge.label
            if edge.kind == "llm"
            else (f"if {edge.label}()" if edge.kind == "predicate" else "")
        )
        label = f'|"{_mermaid_text(text)}"|' if text else ""
        lines.append(
            f"    {_mermaid_id(edge.source)} {arrows[edge.kind]}{label} {_mermaid_id(edge.target)}"
        )
    return "\n".join(lines) + "\n"


def _mermaid_node(node: Node) -> str:
    ident, text = _mermaid_id(node.name), _mermaid_text(node.name)
    shapes = {
        "start": f'(("{text}"))',
        "end": f'((("{text}")))',
        "tool": f'[["{text}"]]',
        "nested": f'{{{{"{text}"}}}}',
        "flow": f'[/"{text}"/]',
    }
    return ident + shapes.get(node.kind, f'("{text}")')


def _mermaid_id(name: str) -> str:
    return f"n_{name.replace('-', '_')}"  # 'end' and friends are Mermaid keywords


def _mermaid_text(text: str) -> str:
    escapes = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "\n": " "}
    return "".join(escapes.get(char, char) for char in text)
