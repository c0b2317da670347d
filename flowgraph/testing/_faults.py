"""Faults below HTTP errors: late answers, dropped connections, broken bodies, cut streams.

Each is a script item, used up by one request like any other, so
``[drop(), "ok"]`` drops the first attempt and serves the client's retry.

- `delay`: answer after some seconds (a client timeout fires first);
- `drop`: close the connection without an answer, or right after the headers;
- `malformed`: a 200 whose body is not a chat completion (not even JSON, by default);
- `truncated`: a reply cut short: a stream without its end and ``[DONE]``.

What the openai client makes of them: a delay past its ``timeout`` is
``openai.APITimeoutError``; a drop or a cut is ``openai.APIConnectionError``
(retried, unless it comes while a stream is read); a malformed body is
``json.JSONDecodeError`` (not retried); a clean cut of a stream raises nothing.

An HTTP error with a status is `error` (and `rate_limited`), in `_items`. The script
item types, which a delay holds in turn, are defined here, at the end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from flowgraph.testing._errors import ScriptValueError
from flowgraph.testing._items import ChatRequest, Fault, Reply, ToolCall

ReplyItem: TypeAlias = str | ToolCall | Sequence[ToolCall] | Reply


@dataclass(frozen=True)
class Delay:
    """Answer ``then`` after ``seconds``; build it with `delay`.

    Attributes:
        seconds: How long the server waits before answering.
        then: The answer once the wait is over: any script item, a fault included.
    """

    seconds: float
    then: ScriptItem

    def __post_init__(self) -> None:
        if not self.seconds >= 0:
            raise ScriptValueError(f"delay() takes seconds >= 0, got {self.seconds!r}")


def delay(seconds: float, then: ScriptItem) -> Delay:
    """Script an answer that comes late, to make a client's timeout fire.

    The item is taken when the request arrives; a retry sent meanwhile takes
    the next one. Stopping the server cancels the wait.

    Args:
        seconds: Seconds to wait before answering.
        then: What to answer after the wait: a reply, a fault (``drop()``, ...)
            or a function of the request, called once the wait is over.

    Example:
        >>> delay(0.2, then="Sorry for the wait.")
        Delay(seconds=0.2, then='Sorry for the wait.')
    """
    return Delay(seconds, then)


@dataclass(frozen=True)
class Drop:
    """Close the connection without a (whole) answer; build it with `drop`.

    Attributes:
        after_headers: Send the status line and headers of a 200 first, then close
            before the body.
    """

    after_headers: bool = False


def drop(*, after_headers: bool = False) -> Drop:
    """Script a dropped connection: the server hangs up instead of answering.

    Args:
        after_headers: False: close before sending a byte. True: send the status
            line and headers of a 200 answer, then close before its body (a stream
            ends before its first event).

    Example:
        >>> drop(after_headers=True)
        Drop(after_headers=True)
    """
    return Drop(after_headers)


_BROKEN_JSON = '{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{"ind'


@dataclass(frozen=True)
class Malformed:
    """A 200 answer with a body that is not a chat completion; build it with `malformed`.

    Attributes:
        body: The body, sent as is.
        content_type: The ``content-type`` of a plain (not streamed) answer.
    """

    body: str
    content_type: str = "application/json"


def malformed(body: str = _BROKEN_JSON, *, content_type: str = "application/json") -> Malformed:
    """Script a 200 answer whose body the client cannot read as a chat completion.

    A plain request gets ``body`` as the whole response body. A streamed request
    gets it as the data of one server-sent event, followed by ``[DONE]``.

    Args:
        body: The body: by default JSON cut in the middle. Valid JSON of the wrong
            shape (``'{"object": "list"}'``) tests what a client makes of it.
        content_type: For a plain request; ``text/html`` plays a proxy's error page.

    Example:
        >>> malformed("<html>Bad gateway</html>", content_type="text/html").content_type
        'text/html'
    """
    return Malformed(body, content_type)


@dataclass(frozen=True)
class Truncated:
    """``reply`` cut short; build it with `truncated`.

    Attributes:
        after: The events of a stream sent before the cut.
        reply: The reply whose answer is cut.
        clean: End the HTTP response properly at the cut instead of dropping the connection.
    """

    after: int
    reply: ReplyItem
    clean: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.after, int) and self.after >= 0):
            raise ScriptValueError(
                f"truncated() takes after= a count of events >= 0, got {self.after!r}"
            )


def truncated(
    after: int, reply: ReplyItem = "This reply is cut off before its end.", *, clean: bool = False
) -> Truncated:
    """Script a reply cut short, as when a server dies mid-answer.

    A streamed request gets the first ``after`` server-sent events of ``reply``
    (never its ``[DONE]``), then the server closes the connection. A plain
    request gets the headers and the first half of the JSON body, then the same.

    Args:
        after: How many events of the stream to send before the cut.
        reply: The reply being cut: text, tool calls or a `Reply`.
        clean: End the HTTP response properly at the cut, with the connection kept:
            a stream then just stops early, with no ``finish_reason`` and no
            ``[DONE]``; a plain body is cut JSON, as `malformed` sends.

    Example:
        >>> truncated(after=2).clean
        False
    """
    return Truncated(after, reply, clean)


Answer: TypeAlias = (
    str | ToolCall | Sequence[ToolCall] | Reply | Fault | Delay | Drop | Malformed | Truncated
)
"""A script item that is not a callable."""
ScriptFunction: TypeAlias = (
    Callable[[ChatRequest], Answer] | Callable[[ChatRequest], Awaitable[Answer]]
)
"""A function of the request (sync or async) returning an `Answer`."""
ScriptItem: TypeAlias = Answer | ScriptFunction
"""One reply of a script: an `Answer`, or a function of the request returning one."""
Outcome: TypeAlias = Reply | Fault | Delay | Drop | Malformed | Truncated
"""An `Answer` in its one canonical form, as the server serves it."""
