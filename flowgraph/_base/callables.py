"""Calling user code that may be sync or async."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeAlias, TypeVar, Union, cast

from flowgraph._base.errors import FlowValidationError
from flowgraph._base.workers import in_worker

T = TypeVar("T")
MaybeAwaitable: TypeAlias = Union[T, Awaitable[T]]  # noqa: UP007 - a generic alias


async def call_user(fn: Callable[..., MaybeAwaitable[T]], *args: Any) -> T:
    """Call ``fn``: await it if it is async, else run it in a worker thread.

    A sync function may block (an HTTP call, a sync ``flow.run``): off the event
    loop it cannot stall the other runs.
    """
    if _is_async(fn):
        return await cast("Awaitable[T]", fn(*args))
    result = await in_worker(fn, *args)
    if inspect.isawaitable(result):
        return cast("T", await result)
    return result


# Set while a run with a deadline runs: its quick callbacks go to a worker thread, so
# that one that blocks cannot keep the deadline from stopping the run.
BOUNDED: ContextVar[bool] = ContextVar("flowgraph_bounded", default=False)


async def call_inline(fn: Callable[..., MaybeAwaitable[T]], *args: Any) -> T:
    """Call ``fn`` on the event loop, awaiting its result if it is awaitable.

    For quick callbacks (predicates, instructions, observers), where a thread hop
    would cost more than the call; in a run with a deadline, a sync one runs in a
    worker thread (see ``BOUNDED``).
    """
    if BOUNDED.get() and not _is_async(fn):
        return await call_user(fn, *args)
    result = fn(*args)
    if inspect.isawaitable(result):
        return cast("T", await result)
    return result


def _is_async(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an async __call__ on an object
    )


def check_arity(
    fn: Callable[..., Any],
    counts: int | tuple[int, ...],
    what: str,
    arguments: str = "the run context",
) -> int:
    """Return how many positional arguments to pass ``fn``, the most of ``counts``
    it accepts, or raise ``FlowValidationError`` naming ``what`` and saying what the
    ``arguments`` are (``"agent, messages, summary_args"``)."""
    options = sorted((counts,) if isinstance(counts, int) else counts, reverse=True)
    if not callable(fn):
        raise FlowValidationError(f"{what} must be callable, got {type(fn).__name__}")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return options[0]  # a builtin without a signature: trust the caller
    for count in options:
        try:
            signature.bind(*([None] * count))
        except TypeError:
            continue
        return count
    wanted = " or ".join(str(count) for count in sorted(options))
    raise FlowValidationError(
        f"{what} must accept {wanted} positional argument(s) ({arguments}), but its "
        f"signature is {fn.__name__ if hasattr(fn, '__name__') else fn}{signature}"
    )


_IMPLEMENTS: dict[tuple[type, type], bool] = {}


def implements(thing: object, protocol: type) -> bool:
    """``isinstance(thing, protocol)`` for a runtime-checkable protocol (a store's, a
    model's capabilities), once per class: checked each time, it cost a run of one
    step 20 us per protocol."""
    key = (type(thing), protocol)
    found = _IMPLEMENTS.get(key)
    if found is None:
        found = _IMPLEMENTS[key] = isinstance(thing, protocol)
    return found
