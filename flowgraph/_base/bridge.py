"""The sync bridge: run a coroutine on a long-lived event loop in a helper thread.

``flow.run()`` must work from a plain script and from inside a running event loop
(a Jupyter cell), where ``asyncio.run`` refuses. As anyio's blocking portal does,
the coroutine runs on a loop in a helper thread while the caller's thread waits.
The loop lives as long as the process, so clients bound to it (httpx connection
pools) stay valid from one ``run()`` to the next. On Ctrl-C the run is cancelled,
its cleanup is awaited, and ``KeyboardInterrupt`` is raised again.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import sys
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from flowgraph._base.errors import UsageError

T = TypeVar("T")
CLEANUP_SECONDS = 30.0

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _portal() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(
                target=_loop.run_forever, name="flowgraph-portal", daemon=True
            )
            _thread.start()
        return _loop


@atexit.register
def _close_portal() -> None:
    """At exit, close what lives as long as the portal loop (``close_with_loop``)."""
    if _loop is not None and _thread is not None and _thread.is_alive():
        closing = asyncio.run_coroutine_threadsafe(_loop.shutdown_asyncgens(), _loop)
        with contextlib.suppress(BaseException):
            closing.result(timeout=CLEANUP_SECONDS)


def close_with_loop(aclose: Callable[[], Awaitable[object]]) -> AsyncGenerator[None, None]:
    """Have ``aclose()`` awaited when the running loop ends, and return the handle
    that keeps that promise: hold it as long as the thing it closes lives.

    Clients are bound to the event loop that opened their connections, and nothing
    else closes them: unclosed, each connection is a ``ResourceWarning`` when it is
    collected. The handle is an async generator started on the running loop, whose
    ``finally`` awaits ``aclose()``: the loop's ``shutdown_asyncgens()`` runs it
    (``asyncio.run`` does at its end, the portal loop at exit), and so does the loop
    when the handle is collected first.
    """
    handle = _closing(aclose)
    step = handle.__anext__()  # registers the generator with the running loop's hooks
    with contextlib.suppress(StopIteration):
        step.send(None)  # and runs it to its ``yield``: nothing before that awaits
    return handle


async def _closing(aclose: Callable[[], Awaitable[object]]) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await aclose()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on the portal loop and return its result."""
    if threading.current_thread() is _thread:
        coro.close()
        raise UsageError(
            "flow.run() was called from inside a running flow (an async tool, step or hook); "
            "use `await flow.arun(...)` there instead"
        )
    loop = _portal()
    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    tasks: list[asyncio.Task[tuple[T | None, BaseException | None]]] = []

    def start() -> None:
        task = loop.create_task(_caught(coro))
        tasks.append(task)
        task.add_done_callback(lambda finished: _settle(finished, done))

    # The run sees the caller's context variables (tracing ids, Jupyter's output target).
    loop.call_soon_threadsafe(start, context=contextvars.copy_context())
    try:
        return done.result()
    except KeyboardInterrupt:
        loop.call_soon_threadsafe(lambda: tasks[0].cancel())
        with contextlib.suppress(BaseException):
            done.result(timeout=CLEANUP_SECONDS)
        raise


def iterate(items: AsyncGenerator[T, None]) -> Iterator[T]:
    """``items`` for sync code: each item awaited on the portal loop, as ``run_sync``
    does; closing the iterator early closes ``items`` there too."""
    try:
        while True:
            try:
                yield run_sync(_next(items))
            except StopAsyncIteration:
                return
    finally:
        run_sync(items.aclose())


async def _next(items: AsyncGenerator[T, None]) -> T:
    return await items.__anext__()


def blocks_a_loop() -> bool:
    """Whether a ``run_sync`` here would block an event loop running in the caller's
    thread (an ``asyncio.run(main())`` script, a web handler), outside IPython and
    Jupyter, where blocking the cell's loop is what the user expects. On the portal's
    own loop ``run_sync`` refuses instead."""
    if asyncio._get_running_loop() is None or threading.current_thread() is _thread:
        return False
    ipython = sys.modules.get("IPython")
    return ipython is None or getattr(ipython, "get_ipython", lambda: None)() is None


async def _caught(coro: Coroutine[Any, Any, T]) -> tuple[T | None, BaseException | None]:
    """``coro``'s result, or the SystemExit or KeyboardInterrupt it raised (a tool that
    calls ``sys.exit()``): raised in a task, they would stop the portal's loop before
    the caller heard of them, and ``run()`` would wait forever."""
    try:
        return await coro, None
    except (SystemExit, KeyboardInterrupt) as exc:
        return None, exc


def _settle(
    task: asyncio.Task[tuple[T | None, BaseException | None]], done: concurrent.futures.Future[T]
) -> None:
    if task.cancelled():
        done.set_exception(concurrent.futures.CancelledError())
    elif (error := task.exception()) is not None:
        done.set_exception(error)
    else:
        result, stopped = task.result()
        if stopped is not None:
            done.set_exception(stopped)
        else:
            done.set_result(result)  # type: ignore[arg-type]  # T, as coro returned it
