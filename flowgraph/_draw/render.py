"""Rendering offline: the DOT text becomes a file through graphviz's ``dot`` program.

``dot`` missing is an error that says how to install graphviz, never a silent None.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flowgraph._base.errors import ConfigurationError, FlowgraphError, UsageError
from flowgraph._draw.dot import flow_digraph
from flowgraph._draw.overlay import Overlay

if TYPE_CHECKING:
    import graphviz

    from flowgraph._graph.plan import DeclaredFlow

FORMATS = ("png", "svg", "pdf", "dot")
INSTALL_GRAPHVIZ = (
    "graphviz's `dot` program is not installed: install it with `apt-get install graphviz` "
    "(Debian, Ubuntu), `brew install graphviz` (macOS) or `conda install graphviz`"
)


def render_flow(
    flow: DeclaredFlow,
    path: str | None,
    *,
    format: str | None = None,
    direction: str = "TB",
    detail: str = "full",
    overlay: Overlay | None = None,
) -> graphviz.Digraph:
    """Draw ``flow`` (with ``overlay``, a run, over it); write it to ``path`` if given.

    Without a path, ``format`` (checked all the same) becomes the returned graph's
    format, the one its ``pipe()`` and ``render()`` use.
    """
    fmt = None if format is None else check_format(format, path)
    dot = flow_digraph(flow, direction=direction, detail=detail, overlay=overlay)
    if path is not None:
        write(dot, path, fmt)
    elif fmt is not None:
        dot.format = fmt
    return dot


def write(dot: graphviz.Digraph, path: str, format: str | None) -> None:
    """Write ``dot`` to ``path``, in ``format`` or the one its suffix names."""
    target = Path(path)
    fmt = check_format(format or target.suffix.lstrip(".") or "png", path)
    data = dot.source.encode() if fmt == "dot" else pipe(dot, fmt)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError as exc:
        raise UsageError(
            f"cannot write {path!r}: {exc.strerror or exc}; choose a path you can write to"
        ) from exc


def check_format(format: str, path: str | None) -> str:
    """``format`` in lower case, or a ``UsageError`` listing the formats."""
    fmt = format.lower()
    if fmt not in FORMATS:
        what = repr(path) if path is not None else "the flow"
        raise UsageError(f"cannot render {what} as {fmt!r}: use one of {', '.join(FORMATS)}")
    return fmt


def pipe(dot: graphviz.Digraph, fmt: str) -> bytes:
    """Run ``dot`` on the graph; the picture's bytes."""
    # Deferred: graphviz's import would add a tenth to flowgraph's, and only drawing
    # needs it (a Digraph passed in has imported it already).
    from graphviz import CalledProcessError, ExecutableNotFound

    try:
        data: bytes = dot.pipe(format=fmt)
    except ExecutableNotFound as exc:
        raise ConfigurationError(INSTALL_GRAPHVIZ) from exc
    except (CalledProcessError, UnicodeError) as exc:
        said = getattr(exc, "stderr", b"") or b""
        raise FlowgraphError(
            f"graphviz's dot could not draw the flow as {fmt}: {exc}"
            + (f" ({said.decode(errors='replace').strip()})" if said else "")
        ) from exc
    return data


def svg(dot: graphviz.Digraph) -> str:
    """The picture as SVG text, for Jupyter."""
    return pipe(dot, "svg").decode()
