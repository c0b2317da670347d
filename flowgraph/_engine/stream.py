"""A run as a stream of events: the listener ``flow.astream()`` gives a run.

The run is the same engine ``arun()`` drives; with a ``Tap`` on it, its visits say
what happens (``Run.tell``) and the tap turns that into events on a bounded queue.
A consumer slower than the run makes the run wait at its next event, so nothing is
buffered without bound; a consumer that stops (breaks out, is cancelled) cancels the
run, which keeps what it committed. Loaded with the first stream: the events'
pydantic models would add to every program's import.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Coroutine
from typing import TYPE_CHECKING, Any

from flowgraph._base.events import BY_TYPE, RunFinished, StreamEvent, WaitingForReply
from flowgraph._base.failures import RunError
from flowgraph._base.result import RunResult

if TYPE_CHECKING:
    from flowgraph._engine.run import Run

BUFFER = 64  # events the run may be ahead of its consumer
_END = object()  # the run is over: its result, or its error, is the task's


class Tap:
    """Turns what a run says into events on a bounded queue."""

    def __init__(self, buffer: int = BUFFER) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue(buffer)

    async def tell(self, type: str, run: Run, fields: dict[str, Any], /) -> None:
        inner = fields.pop("inner", None)  # an agent inside the node (a nested chat's)
        path = run.nodes()
        if inner is not None:
            path.append(inner)
        await self.queue.put(BY_TYPE[type](run_id=run.run_id, step=run.step, path=path, **fields))


async def events(
    start: Coroutine[Any, Any, RunResult], tap: Tap
) -> AsyncGenerator[StreamEvent, None]:
    """Drive ``start`` (a run with ``tap`` on it) and yield its events as they come; the
    last is ``run_finished``. A run that fails yields ``run_finished`` (its result
    failed), then raises its ``RunError``."""
    task = asyncio.ensure_future(_driven(start, tap))
    try:
        while (event := await tap.queue.get()) is not _END:
            yield event
        try:
            result = await task
        except RunError as error:
            if error.result is not None:
                yield _finished(error.result)
            raise
        if result.waiting is not None:
            waiting = result.waiting
            yield WaitingForReply(
                run_id=result.run_id,
                step=result.steps,
                path=[waiting.node],
                prompt=waiting.prompt,
                kind=waiting.kind,
            )
        yield _finished(result)
    finally:
        if not task.done():  # the consumer stopped early: the run stops too
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _driven(start: Coroutine[Any, Any, RunResult], tap: Tap) -> RunResult:
    try:
        result = await start
    except asyncio.CancelledError:
        raise  # the consumer is gone: no one to tell
    except BaseException:
        await tap.queue.put(_END)
        raise
    await tap.queue.put(_END)
    return result


def _finished(result: RunResult) -> RunFinished:
    return RunFinished(run_id=result.run_id, step=result.steps, result=result)
