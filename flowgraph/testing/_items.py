"""What a scripted model answers with (`ToolCall`, `Reply`, an HTTP error `Fault`)
and what it is asked (`ChatRequest`): the plain items a script is made of. Faults
below HTTP are in `_faults`; the script itself in `_script`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from flowgraph.testing._errors import ScriptItemError, ScriptValueError


@dataclass(frozen=True)
class ToolCall:
    """One function call the scripted model makes.

    Attributes:
        name: The function name.
        arguments: The arguments as JSON text, sent as is (so broken JSON is possible).
        id: The call id; None lets the server generate ``call_<n>``.

    Example:
        >>> ToolCall("lookup_order", '{"order_id": "A-1"}')
        ToolCall(name='lookup_order', arguments='{"order_id": "A-1"}', id=None)
    """

    name: str
    arguments: str = "{}"
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.arguments, str):
            raise ScriptItemError(
                f"ToolCall.arguments must be JSON text, got {type(self.arguments).__name__}: "
                "use tool_call(name, {...}) to pass a dict."
            )


def tool_call(
    name: str, arguments: Mapping[str, Any] | str | None = None, *, id: str | None = None
) -> ToolCall:
    """Script a call of function ``name``.

    Args:
        name: The function to call.
        arguments: A dict (sent as JSON), a string (sent raw, e.g. ``"{broken"``) or
            None (``"{}"``).
        id: The call id; None lets the server generate one.

    Example:
        >>> tool_call("lookup_order", {"order_id": "A-1"}).arguments
        '{"order_id": "A-1"}'
    """
    if arguments is None:
        text = "{}"
    elif isinstance(arguments, str):
        text = arguments
    else:
        text = json.dumps(dict(arguments))
    return ToolCall(name, text, id)


@dataclass(frozen=True)
class CallDelta:
    """A piece of a streamed tool call; build it with `call_delta`.

    Attributes:
        index: Which of the reply's calls it belongs to (0 for the first).
        id: The call's id (sent in its first piece).
        name: The function's name (sent in its first piece).
        arguments: A piece of the arguments' JSON text.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


def call_delta(
    index: int, *, id: str | None = None, name: str | None = None, arguments: str = ""
) -> CallDelta:
    """Script a piece of tool call ``index`` of a streamed reply (see `streamed`).

    Example:
        >>> call_delta(0, id="call_a", name="lookup_order").name
        'lookup_order'
    """
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ScriptValueError(f"call_delta's index must be a whole number >= 0, got {index!r}")
    return CallDelta(index, id, name, arguments)


@dataclass(frozen=True)
class Reply:
    """A full assistant reply: text, tool calls, or both.

    ``Reply()`` is an empty reply (content ``""``, no tool calls), as a model
    answering nothing useful would send.

    Attributes:
        content: The text; None with tool calls sends ``content: null``.
        tool_calls: The calls, made in parallel.
        finish_reason: Defaults to ``"tool_calls"`` with calls, else ``"stop"``.
        usage: ``(prompt_tokens, completion_tokens)``; None computes them from word counts.

    Example:
        >>> Reply("Let me check.", [tool_call("lookup_order", {"order_id": "A-1"})]).finish
        'tool_calls'
    """

    content: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    chunks: Sequence[str | CallDelta] | None = None
    """A streamed answer's deltas exactly so (see `streamed`); None: the server cuts
    the text and the arguments itself."""
    usage_chunk: bool = True
    """A streamed answer asked for usage ends with a usage chunk (some servers send none)."""

    def __post_init__(self) -> None:
        calls = tuple(self.tool_calls)
        if not all(isinstance(call, ToolCall) for call in calls):
            raise ScriptItemError(f"Reply.tool_calls must hold ToolCall items, got {calls!r}")
        object.__setattr__(self, "tool_calls", calls)

    @property
    def finish(self) -> str:
        """The finish reason sent: ``finish_reason`` or its default."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


def streamed(
    *pieces: str | CallDelta,
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = None,
    usage_chunk: bool = True,
) -> Reply:
    """Script a reply streamed in exactly these pieces: text (``"Hel"``, ``"lo"``) and
    pieces of tool calls (`call_delta`), in the order given. A request that does not
    stream gets the reply they make up: the text joined, each call's pieces joined.

    Args:
        pieces: The deltas, one chunk each.
        finish_reason: As for `Reply`.
        usage: As for `Reply`.
        usage_chunk: False: no usage chunk, even when the client asks for one.

    Example:
        >>> reply = streamed(
        ...     "Let me look.",
        ...     call_delta(0, id="call_a", name="lookup_order", arguments='{"order'),
        ...     call_delta(0, arguments='_id": "A-1"}'),
        ... )
        >>> reply.content, reply.tool_calls[0].arguments
        ('Let me look.', '{"order_id": "A-1"}')
    """
    text = [piece for piece in pieces if isinstance(piece, str)]
    calls: dict[int, list[Any]] = {}
    for piece in pieces:
        if isinstance(piece, CallDelta):
            call = calls.setdefault(piece.index, [None, None, ""])
            call[0], call[1] = call[0] or piece.id, call[1] or piece.name
            call[2] += piece.arguments
        elif not isinstance(piece, str):
            raise ScriptItemError(
                f"streamed() takes text and call_delta(...) pieces, got {piece!r}"
            )
    for index, (_, name, _) in calls.items():
        if not name:
            raise ScriptValueError(f"streamed(): tool call {index} has no piece with its name")
    return Reply(
        content="".join(text) if text else None,
        tool_calls=[
            ToolCall(name, arguments, id) for _, (id, name, arguments) in sorted(calls.items())
        ],
        finish_reason=finish_reason,
        usage=usage,
        chunks=tuple(pieces),
        usage_chunk=usage_chunk,
    )


@dataclass(frozen=True)
class Fault:
    """An HTTP error answer; build it with `error`.

    Attributes:
        status: The HTTP status (400-599).
        message: ``error.message`` of the body.
        type: ``error.type`` of the body (``"server_error"``, ...).
        headers: Extra response headers (``{"retry-after": "0"}``).
    """

    status: int
    message: str
    type: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ScriptValueError(f"An error status is 400-599, got {self.status}")
        for name, value in self.headers.items():
            if not _is_header_text(name + value):
                raise ScriptValueError(
                    f"Header {name!r}: {value!r} is not one line of Latin-1 text"
                )


_DEFAULT_MESSAGES = {
    429: "Rate limit reached for requests (scripted by flowgraph.testing).",
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The server is overloaded or not ready yet.",
}


def error(
    status: int,
    message: str | None = None,
    *,
    type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Fault:
    """Script an HTTP error with an OpenAI-shaped body.

    Args:
        status: The HTTP status, 400-599. The openai client retries 408, 409, 429 and 5xx.
        message: ``error.message``; a default fitting the status when None.
        type: ``error.type``; by default ``"server_error"`` for 5xx, ``"requests"`` for
            429, else ``"invalid_request_error"``.
        headers: Extra response headers.

    Example:
        >>> error(429).type
        'requests'
    """
    if message is None:
        message = _DEFAULT_MESSAGES.get(
            status, f"{_phrase(status)} (scripted by flowgraph.testing)."
        )
    if type is None:
        type = "server_error" if status >= 500 else "invalid_request_error"
        type = "requests" if status == 429 else type
    return Fault(status, message, type, dict(headers or {}))


def rate_limited(retry_after: float = 1.0, message: str | None = None) -> Fault:
    """Script a 429 that asks the client to wait ``retry_after`` seconds.

    The answer carries ``retry-after-ms`` (read first by the openai client, which
    waits that long before its retry when it is at most 60 s) and ``retry-after``
    in whole seconds, rounded up, as HTTP wants.

    Args:
        retry_after: Seconds the client should wait.
        message: ``error.message``; OpenAI's rate limit text when None.

    Example:
        >>> rate_limited(retry_after=0.25).headers
        {'retry-after': '1', 'retry-after-ms': '250'}
    """
    if not retry_after >= 0:
        raise ScriptValueError(
            f"rate_limited() takes retry_after >= 0 seconds, got {retry_after!r}"
        )
    headers = {
        "retry-after": str(math.ceil(retry_after)),
        "retry-after-ms": str(round(retry_after * 1000)),
    }
    return error(429, message, headers=headers)


def _is_header_text(text: str) -> bool:
    """Whether ``text`` fits in an HTTP header: one line of Latin-1."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any(char in text for char in "\r\n\0")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


@dataclass(frozen=True)
class ChatRequest:
    """One chat completions request the server received, valid or not.

    Attributes:
        body: The parsed JSON body.
        messages: ``body["messages"]``.
        tools: ``body["tools"]`` (empty without tools).
        tool_names: The declared function names.
        model: ``body["model"]``.
        stream: Whether the client asked for a stream.
        response_format: ``body["response_format"]``, if any.
        index: Position among the server's requests, from 0.
        path: The URL path (``/v1/chat/completions``).
        headers: Request headers, by lowercased name.
        rejection: The 400 message if the request was refused as invalid, else None.

    Example:
        >>> request = ChatRequest.from_body({"model": "m", "messages": []}, index=0)
        >>> request.model, request.stream
        ('m', False)
    """

    body: dict[str, Any] = field(repr=False)
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tool_names: list[str]
    model: str
    stream: bool
    response_format: dict[str, Any] | None
    index: int
    path: str = field(default="/v1/chat/completions", repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    rejection: str | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any], index: int, **extra: Any) -> ChatRequest:
        """Build from a parsed body; tolerant of bodies the server rejects."""
        messages = _list_of_dicts(body.get("messages"))
        tools = _list_of_dicts(body.get("tools"))
        names = [tool["function"].get("name") for tool in tools if _is_function(tool)]
        response_format = body.get("response_format")
        return cls(
            body=body,
            messages=messages,
            tools=tools,
            tool_names=[name for name in names if isinstance(name, str)],
            model=body["model"] if isinstance(body.get("model"), str) else "",
            stream=body.get("stream") is True,
            response_format=response_format if isinstance(response_format, dict) else None,
            index=index,
            **extra,
        )

    @property
    def last_message(self) -> dict[str, Any]:
        """The last message (``{}`` if there is none, in a rejected request)."""
        return self.messages[-1] if self.messages else {}

    @property
    def system(self) -> str | None:
        """The text of the first message if it is a system or developer message."""
        first = self.messages[0] if self.messages else {}
        if first.get("role") not in ("system", "developer"):
            return None
        return text_of(first.get("content"))


def _list_of_dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _is_function(tool: dict[str, Any]) -> bool:
    return isinstance(tool.get("function"), dict)


def text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text") for part in content if isinstance(part, dict)]
        return "".join(part for part in parts if isinstance(part, str))
    return ""
