"""The streaming half of the ``Flow`` facade: a run, or a resumed one, as events.

``Flow`` (``_flow.py``) runs and resumes; this mixin streams the same runs through the
same engine, with a ``Tap`` on them (``_engine/stream.py``, loaded with the first
stream: the events' pydantic models would add to every program's import).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from flowgraph._base.bridge import iterate
from flowgraph._base.messages import Input
from flowgraph._base.result import RunResult
from flowgraph._graph.hooks import Hooks
from flowgraph._store.open import Store

if TYPE_CHECKING:
    from flowgraph._base.events import StreamEvent
    from flowgraph._draw.live import Live
    from flowgraph._engine.run import Tap


class Streaming:
    """``astream``, ``stream``, ``astream_resume`` and ``stream_resume`` of ``Flow``,
    written against the three methods of it they use."""

    def _start(
        self,
        input: Input,
        *,
        context: Any,
        max_steps: int | None,
        run_id: str | None,
        hooks: Hooks | Sequence[Hooks],
        live: Live,
        store: Store | None,
        deadline: float | None,
        tap: Tap | None = None,
    ) -> Coroutine[Any, Any, RunResult]:
        raise NotImplementedError  # Flow's

    def _resume(
        self,
        run_id: str,
        store: Store | None,
        reply: Any,
        max_steps: int | None,
        hooks: Hooks | Sequence[Hooks],
        live: Live,
        deadline: float | None,
        tap: Tap | None = None,
    ) -> Coroutine[Any, Any, RunResult]:
        raise NotImplementedError  # Flow's

    def _say_it_blocks(self, called: str, instead: str, frames: int = 1) -> None:
        raise NotImplementedError  # Flow's

    def astream(
        self,
        input: Input,
        *,
        context: Any = None,
        max_steps: int | None = None,
        run_id: str | None = None,
        hooks: Hooks | Sequence[Hooks] = (),
        store: Store | None = None,
        deadline: float | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Run the flow as ``arun`` does, yielding what happens as it happens: typed
        events (``flowgraph.events``), the last one ``run_finished`` with the result.

        Every event has ``type``, ``run_id``, ``step`` and ``path`` (the nodes it
        happened in, outermost first: a sub-flow's or a nested chat's events say so).
        A consumer slower than the run holds it back (nothing is buffered without
        bound); stopping early (``break``) cancels the run, which keeps what it
        committed. A run that fails yields ``run_finished`` (its result failed), then
        raises its ``RunError``.

        Example:
            >>> async for event in flow.astream("Refund A-1"):  # doctest: +SKIP
            ...     if event.type == "text_delta":
            ...         print(event.delta, end="")
        """
        return _tapped(
            lambda tap: self._start(
                input,
                context=context,
                max_steps=max_steps,
                run_id=run_id,
                hooks=hooks,
                live=False,
                store=store,
                deadline=deadline,
                tap=tap,
            )
        )

    def stream(
        self,
        input: Input,
        *,
        context: Any = None,
        max_steps: int | None = None,
        run_id: str | None = None,
        hooks: Hooks | Sequence[Hooks] = (),
        store: Store | None = None,
        deadline: float | None = None,
    ) -> Iterator[StreamEvent]:
        """``astream`` for sync code and Jupyter: the same events, one by one, from the
        run on flowgraph's own loop (as ``run`` does). Closing the iterator early
        cancels the run."""
        self._say_it_blocks("flow.stream()", "`async for event in flow.astream(...)`")
        return iterate(
            self.astream(
                input,
                context=context,
                max_steps=max_steps,
                run_id=run_id,
                hooks=hooks,
                store=store,
                deadline=deadline,
            )
        )

    def astream_resume(
        self,
        run_id: str,
        *,
        store: Store | None = None,
        reply: Any = None,
        max_steps: int | None = None,
        hooks: Hooks | Sequence[Hooks] = (),
        deadline: float | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """``aresume``, streamed as ``astream`` streams a run (``run_started`` says
        ``resumed=True``)."""
        return _tapped(
            lambda tap: self._resume(run_id, store, reply, max_steps, hooks, False, deadline, tap)
        )

    def stream_resume(
        self,
        run_id: str,
        *,
        store: Store | None = None,
        reply: Any = None,
        max_steps: int | None = None,
        hooks: Hooks | Sequence[Hooks] = (),
        deadline: float | None = None,
    ) -> Iterator[StreamEvent]:
        """``astream_resume`` for sync code and Jupyter, as ``stream`` is ``astream``'s."""
        self._say_it_blocks("flow.stream_resume()", "`async for ... in flow.astream_resume()`")
        return iterate(
            self.astream_resume(
                run_id,
                store=store,
                reply=reply,
                max_steps=max_steps,
                hooks=hooks,
                deadline=deadline,
            )
        )


async def _tapped(
    start: Callable[[Tap], Coroutine[Any, Any, RunResult]],
) -> AsyncGenerator[StreamEvent, None]:
    """The events of ``start(tap)`` (a run or a resume with a ``Tap`` on it) as they
    come. The run starts with the first event asked for; closing this generator (its
    consumer stopped) closes the events' and so cancels the run, and waits for it."""
    # Deferred: the events' models would add to every program's import.
    from flowgraph._engine.stream import Tap, events

    tap = Tap()
    async with contextlib.aclosing(events(start(tap), tap)) as stream:
        async for event in stream:
            yield event
