"""Retries and timeouts: a policy, and the one loop that applies it.

Model requests are retried on what a provider means as "try again": 429 (after
its Retry-After), 408, 409, 5xx, timeouts and dropped connections. Tools and tool
steps are retried only on the exception types their policy names, since a tool
may have done half its work before it failed.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from flowgraph._base.checks import check_number
from flowgraph._base.errors import FlowValidationError

T = TypeVar("T")
RETRY_AFTER_CAP = 60.0


@dataclass(frozen=True)
class Retry:
    """How many times to try, and how long to wait in between.

    The wait before try ``n + 1`` is ``backoff * 2 ** (n - 1)``, at most
    ``max_backoff``, give or take ``jitter`` (a fraction) so that many runs do not
    retry in step; a provider's Retry-After, when longer, is honoured.

    Args:
        attempts: tries in all, the first included (1: no retry).
        backoff: seconds before the first retry.
        max_backoff: the longest wait.
        jitter: the wait varies by up to this fraction, either way.
        on: for tools and tool steps, the exception types worth another try
            (model requests retry on the provider's transient errors).

    Example:
        >>> Retry(attempts=5, backoff=1.0).wait(3)
        4.0...
    """

    attempts: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: float = 0.25
    on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        for what in ("backoff", "max_backoff", "jitter"):
            check_number(getattr(self, what), f"Retry({what}=...)")
        kinds = self.on if isinstance(self.on, tuple) else (self.on,)
        if not all(isinstance(k, type) and issubclass(k, BaseException) for k in kinds):
            raise FlowValidationError(
                f"Retry(on={self.on!r}): on= takes exception classes, as on=(ConnectionError,)"
            )
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise FlowValidationError(f"Retry(attempts={self.attempts!r}): a whole number")
        if self.attempts < 1:
            raise FlowValidationError(
                f"Retry(attempts={self.attempts}): at least 1 attempt; Retry(attempts=1) tries once"
            )
        if self.backoff < 0 or self.max_backoff < 0 or not 0 <= self.jitter <= 1:
            raise FlowValidationError(
                f"Retry(backoff={self.backoff}, max_backoff={self.max_backoff}, "
                f"jitter={self.jitter}): backoff and max_backoff >= 0, jitter within 0..1"
            )

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after try number ``attempt`` failed."""
        base = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        wait: float = base * (1 + random.uniform(-self.jitter, self.jitter))
        if retry_after is not None:
            wait = max(wait, min(retry_after, RETRY_AFTER_CAP))
        return wait


NO_RETRY = Retry(attempts=1)
DEFAULT_REQUEST_RETRY = Retry()


class DeadlinePassed(Exception):
    """The run's deadline came before the call could finish."""


async def retrying(
    call: Callable[[], Awaitable[T]],
    policy: Retry,
    retryable: Callable[[BaseException], bool],
    *,
    timeout: float | None = None,
    deadline: float | None = None,
) -> T:
    """Await ``call()`` until it succeeds, ``policy`` allows no more tries, or the
    error is not ``retryable``; each try is bounded by ``timeout`` and the
    ``deadline`` (a ``time.monotonic()`` instant), whichever comes first."""
    attempt = 0
    while True:
        attempt += 1
        limit = _limit(timeout, deadline)
        try:
            if limit is None:
                return await call()
            return await asyncio.wait_for(call(), limit)
        except Exception as exc:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlinePassed() from exc
            if attempt >= policy.attempts or not retryable(exc):
                raise
            pause = policy.wait(attempt, retry_after(exc))
            if deadline is not None and time.monotonic() + pause >= deadline:
                raise
            await asyncio.sleep(pause)


async def retrying_on_named(
    call: Callable[[], Awaitable[T]],
    policy: Retry | None,
    *,
    timeout: float | None = None,
    deadline: float | None = None,
) -> T:
    """Await ``call()`` as a tool or a tool step is: tried again only on the exception
    types ``policy.on`` names (no policy: once), each try bounded by ``timeout``."""
    if policy is None and timeout is None and deadline is None:
        return await call()
    chosen = policy or NO_RETRY
    return await retrying(
        call,
        chosen,
        lambda exc: isinstance(exc, chosen.on),
        timeout=timeout,
        deadline=deadline,
    )


def _limit(timeout: float | None, deadline: float | None) -> float | None:
    if deadline is None:
        return timeout
    left = max(0.0, deadline - time.monotonic())
    return left if timeout is None else min(timeout, left)


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (TimeoutError, asyncio.TimeoutError))


def transient(exc: BaseException) -> bool:
    """Whether a model request that raised ``exc`` is worth another try."""
    if is_timeout(exc) or isinstance(exc, ConnectionError):
        return True
    openai = sys.modules.get("openai")
    if openai is not None and isinstance(exc, openai.APIConnectionError):  # and timeouts
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status in (408, 409, 429) or status >= 500)


def retry_after(exc: BaseException) -> float | None:
    """The wait a provider asked for in its Retry-After headers, in seconds."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    millis, value = headers.get("retry-after-ms"), headers.get("retry-after")
    for text, scale in ((millis, 1000.0), (value, 1.0)):
        try:
            return float(text) / scale if text is not None else None
        except ValueError:
            continue
    try:  # an HTTP date
        moment = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
