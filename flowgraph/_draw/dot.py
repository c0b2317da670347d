"""A flow as a graphviz ``Digraph``: shapes by node kind, styles by edge kind, nested
chats and sub-flows as clusters, and a run's overlay drawn over it.

Every label is an HTML-like label built from escaped text, so a condition holding
quotes, angle brackets, backslashes or DOT syntax cannot break or inject into the
picture.
"""

from __future__ import annotations

import contextlib
import html
import itertools
import linecache
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowgraph._base.errors import ConfigurationError, UsageError
from flowgraph._draw.overlay import SEPARATOR, Overlay, Stop
from flowgraph._graph.edges import Edge
from flowgraph._graph.human import Human
from flowgraph._graph.nested import NestedChat
from flowgraph._graph.nodes import END, START, Agent, Node, ToolStep
from flowgraph._graph.subflow import SubFlow
from flowgraph._graph.validate import check_endpoints, dead_ends
from flowgraph._llm.default import default_model
from flowgraph._llm.models import Model

if TYPE_CHECKING:
    import graphviz

    from flowgraph._graph.plan import DeclaredFlow

DIRECTIONS = ("TB", "LR", "BT", "RL")
DETAILS = ("full", "compact")
LARGE = 200  # edges; past this, layout effort is bounded
PREDICATE_CHARS = 80  # a lambda's source longer than this is labelled by its name
SAYING_CHARS = 90  # of the active node's answer so far, in a live picture
FONT = "Helvetica"
RED = "#dc2626"
AMBER, DARK_AMBER = "#d97706", "#b45309"
NODE_STYLE: dict[str, dict[str, str]] = {
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
    "chat": {"shape": "box", "style": "rounded,filled", "fillcolor": "#f5f3ff", "color": "#5b21b6"},
    "flow": {"shape": "box3d", "style": "filled", "fillcolor": "#dcfce7", "color": "#166534"},
    "human": {"shape": "house", "style": "filled", "fillcolor": "#fce7f3", "color": "#9d174d"},
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
CLUSTER_STYLE = {
    "nested": {"style": "rounded,dashed", "color": "#5b21b6", "bgcolor": "#faf5ff"},
    "flow": {"style": "rounded", "color": "#166534", "bgcolor": "#f0fdf4"},
}
EDGE_STYLE = {
    "llm": {"style": "dashed", "color": "#1d4ed8", "fontcolor": "#1d4ed8"},
    "predicate": {"style": "solid", "color": "#15803d", "fontcolor": "#15803d"},
    "fallback": {"style": "solid", "color": "#6b7280", "fontcolor": "#6b7280"},
}
TAKEN = {"color": RED, "fontcolor": RED, "penwidth": "2.5"}
ENDS_HERE = {"style": "dotted", "color": "#9ca3af", "fontcolor": "#6b7280"}
"""A node with no out-edge: a run that gets there ends there, as on an edge to END."""
VIOLET = "#6d28d9"  # what hooks did, in a run's picture


@dataclass(frozen=True)
class StopLook:
    """How a node (or a sub-flow's cluster) where the run stopped short of END is drawn:
    its outline, the style added to its own, its fill, and the colour of its note."""

    color: str
    style: str
    fill: str | None = None
    cluster_fill: str | None = None
    note_color: str = RED


STOPPED: dict[Stop, StopLook] = {
    "failed": StopLook("#991b1b", "bold", fill="#fecaca", cluster_fill="#fee2e2"),
    "waiting": StopLook(AMBER, "dashed,bold", note_color=DARK_AMBER),
}


@dataclass(frozen=True)
class Ends:
    """Where edges attach to a drawn node: the ids to leave from and arrive at, and
    the cluster to clip them at (for nested chats and sub-flows)."""

    entry: str
    exit: str
    cluster: str | None = None


def flow_digraph(
    flow: DeclaredFlow,
    *,
    direction: str = "TB",
    detail: str = "full",
    overlay: Overlay | None = None,
) -> graphviz.Digraph:
    """The flow as a ``graphviz.Digraph``. Rendering reads the flow; it never changes it."""
    _check_options(direction, detail)
    check_endpoints(flow)
    overlay = overlay or Overlay()
    # Deferred, as in render.py: graphviz's import would add a tenth to flowgraph's.
    import graphviz

    # nohtml: a name in angle brackets would be read as an HTML string, and go unquoted.
    dot = graphviz.Digraph(graphviz.nohtml(clean(flow.name)))
    dot.attr(
        rankdir=direction,
        fontname=FONT,
        nodesep="0.5",
        ranksep="0.6",
        compound="true",
        labelloc="t",
        label=_html(_text(overlay.title or f"flow: {flow.name}")),
    )
    if len(flow.edges) > LARGE:
        # Bound dot's ranking and crossing passes: unbounded, a flow of a thousand nodes
        # takes many minutes to lay out; bounded, seconds, for a plainer picture.
        dot.attr(nslimit="2", nslimit1="2", mclimit="0.1", splines="line")
    dot.attr("node", fontname=FONT, fontsize="12")
    dot.attr("edge", fontname=FONT, fontsize="10", arrowsize="0.8")
    _Painter(dot, overlay, detail == "full").flow(flow, prefix="")
    return dot


def _check_options(direction: str, detail: str) -> None:
    if direction not in DIRECTIONS:
        raise UsageError(f"unknown direction {direction!r}: use one of {', '.join(DIRECTIONS)}")
    if detail not in DETAILS:
        raise UsageError(f"unknown detail {detail!r}: use one of {', '.join(DETAILS)}")


class _Painter:
    """Draws one flow (and, recursively, its sub-flows) into a graph."""

    def __init__(self, dot: graphviz.Digraph, overlay: Overlay, full: bool) -> None:
        self.dot, self.overlay, self.full = dot, overlay, full
        self._default: str | None = None

    def default_model(self) -> str:
        """What an agent with no model of its own (nor its flow's) runs on: the default
        model as this process resolves it (OpenAI with a key, else the bundled one)."""
        if self._default is None:
            try:
                self._default = f"{default_model().name} (default)"
            except ConfigurationError:
                self._default = "no model set"
        return self._default

    def flow(
        self, flow: DeclaredFlow, prefix: str, graph: Any = None, inherited: Model | None = None
    ) -> None:
        """Draw ``flow``; ``inherited`` is the model a sub-flow without one runs on, its
        parent's (as ``SubFlow.visit`` passes it)."""
        graph = graph if graph is not None else self.dot
        model = flow.model or inherited
        ends = {
            node.name: self.node(graph, flow, node, prefix, model)
            for node in (START, *flow.nodes.values(), END)
        }
        # The sources with a conditional edge: their fallbacks read "otherwise". Found
        # once: looked for per fallback edge, drawing was quadratic in the edges.
        branching = {edge.source for edge in flow.edges if edge.kind != "fallback"}
        for edge in flow.edges:
            if edge.source in ends and edge.target in ends:
                self.edge(graph, edge, branching, ends[edge.source], ends[edge.target], prefix)
        for name in dead_ends(flow):
            self.ends_here(graph, ends[name], ends[END.name], prefix + name, prefix + END.name)

    def node(
        self, graph: Any, flow: DeclaredFlow, node: Node, prefix: str, model: Model | None
    ) -> Ends:
        ident = prefix + node.name
        if self.full and isinstance(node, NestedChat) and node.chats:
            return self.nested(graph, flow, node, ident)
        if self.full and isinstance(node, SubFlow):
            return self.subflow(graph, node, ident, model)
        marks = self.overlay.nodes.get(ident)
        ran = marks.model if marks is not None and marks.model else None
        if ran is None and model is None and node.model is None and isinstance(node, Agent):
            ran = self.default_model()
        label = _node_label(node, model, self.full, ran)
        graph.node(ident, self.marked_label(label, ident), **self.marked_style(node.kind, ident))
        return Ends(ident, ident)

    def nested(self, graph: Any, flow: DeclaredFlow, node: NestedChat, ident: str) -> Ends:
        cluster = f"cluster_{ident}"
        with graph.subgraph(name=cluster) as inner:
            inner.attr(
                label=self.marked_label(f"<b>{_text(node.name)}</b> · nested chat", ident),
                **self.cluster_style("nested", ident),
            )
            ids = [f"{ident}{SEPARATOR}chat{index}" for index in range(len(node.chats))]
            for index, (chat_id, chat) in enumerate(zip(ids, node.chats, strict=True)):
                inner.node(chat_id, _chat_label(index, chat, flow), **NODE_STYLE["chat"])
            for first, second in itertools.pairwise(ids):
                inner.edge(
                    first,
                    second,
                    _html("summary"),
                    style="dotted",
                    color="#5b21b6",
                    fontcolor="#5b21b6",
                )
        return Ends(ids[0], ids[-1], cluster)

    def subflow(self, graph: Any, node: SubFlow, ident: str, model: Model | None) -> Ends:
        cluster = f"cluster_{ident}"
        prefix = ident + SEPARATOR
        with graph.subgraph(name=cluster) as inner:
            inner.attr(
                label=self.marked_label(f"<b>{_text(node.name)}</b> · sub-flow", ident),
                **self.cluster_style("flow", ident),
            )
            self.flow(node.flow, prefix, inner, model)
        return Ends(prefix + START.name, prefix + END.name, cluster)

    def edge(
        self,
        graph: Any,
        edge: Edge,
        branching: set[str],
        source: Ends,
        target: Ends,
        prefix: str,
    ) -> None:
        attrs = dict(EDGE_STYLE[edge.kind])
        text = _edge_text(edge, branching)
        steps = self.overlay.taken(prefix + edge.source, prefix + edge.target)
        if steps:
            attrs.update(TAKEN)
            count = f" ({len(steps)}×)" if len(steps) > 1 else ""
            taken = f"<b>→ {_text(_steps(steps))}{count}</b>"
            text = f"{text}<br/>{taken}" if text else taken
        if source.cluster:
            attrs["ltail"] = source.cluster
        if target.cluster:
            attrs["lhead"] = target.cluster
        graph.edge(source.exit, target.entry, _html(text) if text else "", **attrs)

    def ends_here(self, graph: Any, source: Ends, end: Ends, ident: str, end_ident: str) -> None:
        """The dotted edge to END of a node with no out-edge (marked if a run ended there)."""
        attrs = dict(ENDS_HERE)
        text = "ends here"
        if self.overlay.taken(ident, end_ident):
            attrs.update(TAKEN)
            text += "<br/><b>→ end</b>"
        if source.cluster:
            attrs["ltail"] = source.cluster
        graph.edge(source.exit, end.entry, _html(text), **attrs)

    def marked_label(self, markup: str, ident: str) -> str:
        marks = self.overlay.nodes.get(ident)
        if marks is not None:
            facts = [f"step {_steps(marks.steps)}"]
            if marks.seconds:
                facts.append(_duration(marks.seconds))
            if marks.usage.requests:
                facts.append(f"{marks.usage.requests} req, {marks.usage.total_tokens} tok")
            markup += f'<br/><font point-size="10" color="{RED}">{_text(" · ".join(facts))}</font>'
            if marks.out_of_turns:
                line = "max_turns reached, no final answer"
                markup += f'<br/><font point-size="10" color="{DARK_AMBER}"><b>{line}</b></font>'
            for line in marks.hooks:
                text = _wrap(f"hook {line}", 36)
                markup += f'<br/><font point-size="10" color="{VIOLET}">{text}</font>'
        if ident == self.overlay.active and self.overlay.saying:
            words = " ".join(self.overlay.saying.split())
            words = words if len(words) <= SAYING_CHARS else "…" + words[-SAYING_CHARS:]
            markup += (
                f'<br/><font point-size="10" color="{DARK_AMBER}"><i>{_wrap(words, 30)}</i></font>'
            )
        stop, note = self.overlay.stop(ident), self.overlay.note(ident)
        if stop is not None and note:
            color = STOPPED[stop].note_color
            markup += f'<br/><font point-size="10" color="{color}"><b>{_wrap(note, 30)}</b></font>'
        return _html(markup)

    def marked_style(self, kind: str, ident: str) -> dict[str, str]:
        style = dict(NODE_STYLE[kind])
        overlay = self.overlay
        if ident in overlay.nodes or overlay.touched(ident):
            style.update(color=RED, penwidth="2.5")
        if ident == overlay.active:
            style.update(fillcolor="#fde68a", color=DARK_AMBER, penwidth="3")
        return self.stopped(style, ident)

    def cluster_style(self, kind: str, ident: str) -> dict[str, str]:
        style = dict(CLUSTER_STYLE[kind])
        if ident in self.overlay.nodes:
            style.update(color=RED, penwidth="2.5")
        if ident == self.overlay.active:
            style.update(bgcolor="#fef3c7")
        return self.stopped(style, ident, cluster=True)

    def stopped(self, style: dict[str, str], ident: str, cluster: bool = False) -> dict[str, str]:
        """``style`` (a node's, or a sub-flow's cluster's) with the look of the run's stop
        at ``ident``, if it stopped there."""
        stop = self.overlay.stop(ident)
        if stop is None:
            return style
        look = STOPPED[stop]
        own = [part for part in style["style"].split(",") if part not in look.style.split(",")]
        style.update(color=look.color, penwidth="3", style=",".join([*own, look.style]))
        fill = look.cluster_fill if cluster else look.fill
        if fill is not None:
            style["bgcolor" if cluster else "fillcolor"] = fill
        return style


def _node_label(node: Node, flow_model: Model | None, full: bool, ran: str | None) -> str:
    """``ran``: the model a run's requests of the node went to, or the default model."""
    lines = [f"<b>{_text(node.name)}</b>"]
    if not full:
        return lines[0]
    if isinstance(node, Agent):
        model = node.model or flow_model
        lines.append(_small(_text(ran or (model.name if model else "no model set"))))
        if node.tools:
            lines.append(_small("tools: " + _wrap(", ".join(t.name for t in node.tools), 30)))
    elif isinstance(node, ToolStep):
        lines.append(_small(_text(getattr(node.fn, "__name__", "function")) + "()"))
    elif isinstance(node, NestedChat):
        lines.append(_small("nested chat, no chats"))
    elif isinstance(node, Human):
        prompt = node.prompt if isinstance(node.prompt, str) else "prompt()"
        lines.append(_small("asks: " + _wrap(prompt, 30)))
    elif isinstance(node, SubFlow):
        count = len(node.flow.nodes)
        lines.append(_small(f"sub-flow, {count} node{'s' * (count != 1)}"))
    return "<br/>".join(lines)


def _chat_label(index: int, chat: Any, flow: DeclaredFlow) -> str:
    recipient = getattr(chat.recipient, "name", "?")
    lines = [f"<b>{index + 1}. {_text(recipient)}</b>"]
    facts = [f"summary: {_method(chat.summary)}"]
    if chat.carryover is not None:
        facts.append(f"carryover: {_method(chat.carryover)}")
    if chat.max_turns > 1:
        sender = getattr(chat.sender, "name", "?")
        facts.append(f"{chat.max_turns} turns with {sender}")
    lines.extend(_small(_text(fact)) for fact in facts)
    return _html("<br/>".join(lines))


def _method(method: object) -> str:
    return method if isinstance(method, str) else f"{getattr(method, '__name__', 'fn')}()"


def _edge_text(edge: Edge, branching: set[str]) -> str:
    if edge.kind == "llm":
        text = _wrap(str(edge.when), 28)
    elif edge.kind == "predicate":
        text = _wrap(predicate_text(edge), 28)
    else:
        text = "otherwise" if edge.source in branching else ""
    if edge.history is not None:  # what the next agent sees of the conversation
        policy = f'<font point-size="9"><i>history: {edge.history}</i></font>'
        text = f"{text}<br/>{policy}" if text else policy
    return text


def predicate_text(edge: Edge) -> str:
    """``if is_vip()``; a lambda on one line by its source: ``if "vip" in ctx.context``."""
    body = _one_line_source(edge.when)
    return f"if {body}" if body else f"if {edge.label}()"


def _one_line_source(fn: object) -> str | None:
    """The source text of a lambda's body when it fits one line, else None."""
    code = getattr(fn, "__code__", None)
    if code is None or getattr(fn, "__name__", "") != "<lambda>":
        return None
    spans = [p for p in code.co_positions() if p[0] is not None and p[2] != p[3]]
    if not spans or any(p[0] != p[1] or p[0] != spans[0][0] for p in spans):
        return None
    line = linecache.getline(code.co_filename, spans[0][0]).encode()
    start, end = min(p[2] for p in spans), max(p[3] for p in spans)
    with contextlib.suppress(UnicodeDecodeError):
        text = line[start:end].decode().strip()
        return text if 0 < len(text) <= PREDICATE_CHARS else None
    return None


def _steps(steps: list[str]) -> str:
    shown = ", ".join(steps[:6])
    return shown + (", …" if len(steps) > 6 else "")


def _duration(seconds: float) -> str:
    if seconds < 0.001:
        return "<1 ms"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _small(markup: str) -> str:
    return f'<font point-size="10">{markup}</font>'


def _wrap(text: str, width: int) -> str:
    lines = textwrap.wrap(" ".join(clean(text).splitlines()), width)
    return "<br/>".join(_text(line) for line in lines or [""])


def _text(text: str) -> str:
    # Graphviz drops raw line breaks in HTML labels, gluing the words: make them spaces.
    return html.escape(" ".join(clean(text).splitlines()), quote=True)


# Control characters (but tab and line breaks) become spaces: dot refuses a NUL, and
# the others draw as nothing or as garbage.
_CONTROL = {code: " " for code in (*range(9), 11, 12, *range(14, 32), 127)}


def clean(text: str) -> str:
    """``text`` as a picture can hold it: control characters become spaces and a lone
    surrogate (which no UTF-8 file can hold) becomes U+FFFD."""
    text = text.translate(_CONTROL)
    if not text.isascii():
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _html(markup: str) -> str:
    return f"<{markup}>"
