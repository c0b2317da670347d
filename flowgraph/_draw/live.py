"""``run(..., live=True)``: the flow drawn with the run so far, redrawn as it goes.

In Jupyter the picture is one display, updated in place, the active node's answer
under it as the model writes it (the view listens to the run's stream); elsewhere
each step is a line on stderr; or pass a function, which receives each redrawn SVG. Drawing runs
``dot`` in a worker thread, at most a few times a second, from a task the run owns,
so the run itself never waits for a picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from flowgraph._draw.dot import flow_digraph
from flowgraph._draw.overlay import END, Overlay
from flowgraph._draw.render import svg
from flowgraph._graph.hooks import ErrorEvent, HandoffEvent, Hooks, NodeEvent

if TYPE_CHECKING:
    import graphviz

    from flowgraph._base.result import RunResult
    from flowgraph._graph.plan import DeclaredFlow

Live = bool | Callable[[str], Any]
FRAME_SECONDS = 0.25


def live_view(flow: DeclaredFlow, live: Live) -> LiveView | TextProgress:
    """The view ``live`` asks for: a function gets SVGs; True means Jupyter or text."""
    if callable(live):
        return LiveView(flow, live)
    sink = _notebook_sink()
    return LiveView(flow, sink) if sink is not None else TextProgress()


class LiveView(Hooks):
    """Keeps an ``Overlay`` of the run so far and hands fresh SVGs to ``show``."""

    def __init__(self, flow: DeclaredFlow, show: Callable[[str], Any]) -> None:
        self.flow, self.show = flow, show
        self.overlay = Overlay(title=f"{flow.name}: running")
        self._dirty = asyncio.Event()
        # A frame drawn in a worker thread may end after the run: never after the last one.
        self._lock = threading.Lock()
        self._finished = False

    def on_handoff(self, event: HandoffEvent) -> None:
        step = "end" if event.target == END else str(event.step + 1)
        self.overlay.move(event.source, event.target, step)

    def on_node_enter(self, event: NodeEvent) -> None:
        self.overlay.visit(event.node, str(event.step))
        self.overlay.active = event.node
        self._dirty.set()

    def on_node_exit(self, event: NodeEvent) -> None:
        self.overlay.visit(event.node, str(event.step), event.seconds, event.usage)
        self._dirty.set()

    def on_error(self, event: ErrorEvent) -> None:
        self.overlay.failed, self.overlay.active = event.node, None

    async def tell(self, type: str, run: object, fields: dict[str, Any], /) -> None:
        """The run's stream (the view is its tap): the active node's answer, as the
        model writes it, shown under the node."""
        if type == "text_delta":
            self.overlay.saying += fields["delta"]
            self._dirty.set()
        elif type in ("node_entered", "node_exited", "request_retried"):
            self.overlay.saying = ""

    @contextlib.asynccontextmanager
    async def drawing(self) -> AsyncIterator[None]:
        """Redraw while the run goes on; the caller calls ``finish`` at the end."""
        await self._frame()
        task = asyncio.create_task(self._redraw())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _redraw(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._frame()
            await asyncio.sleep(FRAME_SECONDS)

    async def _frame(self, *, final: bool = False) -> None:
        # The DOT text is built here, on the loop, where the hooks change the overlay;
        # only `dot` itself runs in a worker thread.
        dot = flow_digraph(self.flow, overlay=self.overlay)
        await asyncio.to_thread(self._show, dot, final)

    def _show(self, dot: graphviz.Digraph, final: bool) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = final
            self.show(svg(dot))

    async def finish(self, result: RunResult) -> None:
        """Draw the finished run, as ``result.render()`` does: the last frame."""
        self.overlay = Overlay.of(result)
        await self._frame(final=True)


class TextProgress(Hooks):
    """Outside Jupyter: one line per step on stderr."""

    def on_node_enter(self, event: NodeEvent) -> None:
        print(f"step {event.step}: {event.node} ...", file=sys.stderr, flush=True)

    def on_node_exit(self, event: NodeEvent) -> None:
        print(
            f"step {event.step}: {event.node} done in {event.seconds:.2f} s",
            file=sys.stderr,
            flush=True,
        )

    @contextlib.asynccontextmanager
    async def drawing(self) -> AsyncIterator[None]:
        yield

    async def finish(self, result: RunResult) -> None:
        print(f"{result.status}: {result.reason}", file=sys.stderr, flush=True)


def _notebook_sink() -> Callable[[str], Any] | None:
    """A function that shows an SVG in the running notebook cell, updating one display;
    None outside a Jupyter kernel."""
    try:  # IPython is not a dependency: imported only where a live view is asked for
        from IPython import get_ipython
        from IPython.display import SVG, display
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    handle: list[Any] = []

    def show(picture: str) -> None:
        if handle:
            handle[0].update(SVG(picture))  # type: ignore[no-untyped-call]
        else:
            handle.append(display(SVG(picture), display_id=True))  # type: ignore[no-untyped-call]

    return show
