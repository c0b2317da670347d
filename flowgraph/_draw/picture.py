"""What the ``Flow`` facade draws: the flow alone, or with a run over it, as DOT text,
Mermaid, a rendered file or SVG for Jupyter. One module, so that the facade defers
the drawing with one import."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowgraph._draw.dot import flow_digraph
from flowgraph._draw.mermaid import to_mermaid
from flowgraph._draw.overlay import Overlay
from flowgraph._draw.render import render_flow, svg

if TYPE_CHECKING:
    import graphviz

    from flowgraph._base.result import RunResult
    from flowgraph._graph.plan import DeclaredFlow


def _overlay(result: RunResult | None) -> Overlay | None:
    return Overlay.of(result) if result is not None else None


def dot_text(flow: DeclaredFlow, direction: str, detail: str) -> str:
    """The flow in graphviz's DOT language."""
    return str(flow_digraph(flow, direction=direction, detail=detail).source)


def mermaid(flow: DeclaredFlow, direction: str, detail: str, result: RunResult | None) -> str:
    """The flow as a Mermaid flowchart, with where ``result``'s run stopped marked."""
    return to_mermaid(flow, direction=direction, detail=detail, overlay=_overlay(result))


def render(
    flow: DeclaredFlow,
    path: str | None,
    format: str | None,
    direction: str,
    detail: str,
    result: RunResult | None,
) -> graphviz.Digraph:
    """The flow drawn (with ``result``'s run over it), written to ``path`` if given."""
    overlay = _overlay(result)
    return render_flow(
        flow, path, format=format, direction=direction, detail=detail, overlay=overlay
    )


def svg_text(flow: DeclaredFlow, result: RunResult | None) -> str:
    """The flow (with ``result``'s run over it) as SVG, for Jupyter."""
    return svg(flow_digraph(flow, overlay=_overlay(result)))
