"""Worker threads for user code that blocks (sync tools, tool steps and hooks).

asyncio's own executor joins its threads when the loop closes and when the process
exits: a sync function that outlives its timeout (or a Ctrl-C) kept the process alive
until it returned, however long that took. A thread cannot be stopped; these are
daemon threads, never joined: a call the run gave up on is abandoned, and the process
exits without waiting for it. A worker is reused once its call returns; a new one is
started when none is idle, up to ``MOST`` at once (then calls wait their turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
MOST = min(32, (os.cpu_count() or 1) + 4)  # as asyncio's default executor


class _Pool:
    def __init__(self, most: int) -> None:
        self._most = most
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._started = 0

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)
        if self._idle.acquire(blocking=False):
            return  # an idle worker takes it
        with self._lock:
            if self._started < self._most:
                self._started += 1
                name = f"flowgraph-worker-{self._started}"
                threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        while True:
            self._jobs.get()()
            self._idle.release()


_POOL = _Pool(MOST)


async def in_worker(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a daemon worker thread, with this task's context
    variables (a tool call's idempotency key follows it); awaiting it can be cancelled,
    and the call then runs on, abandoned."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def job() -> None:
        try:
            result = context.run(fn, *args, **kwargs)
        except BaseException as exc:
            _settle(loop, future, None, exc)
        else:
            _settle(loop, future, result, None)

    _POOL.submit(job)
    return await future


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
) -> None:
    def settle() -> None:
        if future.done():  # the run gave up on the call
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    with contextlib.suppress(RuntimeError):  # a closed loop: no one waits for it any more
        loop.call_soon_threadsafe(settle)
