"""Script items (what the scripted model answers) and the OpenAI JSON they become.

A script is a list of items consumed one per request, or one function of the
request. An item is a `str` (text), a `ToolCall`, a list of them (parallel
calls), a `Reply`, a `Fault` (an HTTP error), a fault below HTTP (`_faults`:
a delay, a dropped connection, a malformed body, a truncated stream) or a
callable returning one of these. `CompletionWriter` turns a `Reply` into
``chat.completion`` JSON or ``chat.completion.chunk`` SSE events.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeAlias

from flowgraph.testing._faults import Delay, Drop, Malformed, Truncated


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
            raise TypeError(
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

    def __post_init__(self) -> None:
        calls = tuple(self.tool_calls)
        if not all(isinstance(call, ToolCall) for call in calls):
            raise TypeError(f"Reply.tool_calls must hold ToolCall items, got {calls!r}")
        object.__setattr__(self, "tool_calls", calls)

    @property
    def finish(self) -> str:
        """The finish reason sent: ``finish_reason`` or its default."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


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
            raise ValueError(f"An error status is 400-599, got {self.status}")
        for name, value in self.headers.items():
            if not _is_header_text(name + value):
                raise ValueError(f"Header {name!r}: {value!r} is not one line of Latin-1 text")


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
        raise ValueError(f"rate_limited() takes retry_after >= 0 seconds, got {retry_after!r}")
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
        return _text(first.get("content"))


def _list_of_dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _is_function(tool: dict[str, Any]) -> bool:
    return isinstance(tool.get("function"), dict)


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text") for part in content if isinstance(part, dict)]
        return "".join(part for part in parts if isinstance(part, str))
    return ""


# -- the script ------------------------------------------------------------------------------

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
_AS_IS = (Reply, Fault, Drop, Malformed)


class ScriptError(Exception):
    """The script could not answer a request (exhausted, or an item failed)."""


class Script:
    """Items consumed in order, one per request; or one function for every request."""

    def __init__(self, script: Iterable[ScriptItem] | ScriptFunction) -> None:
        self._function: ScriptFunction | None = None
        self._items: deque[ScriptItem] = deque()
        self.held = 0  # items ever added: for the "it held N replies" message
        if callable(script):
            self._function = script
        elif isinstance(script, (str, ToolCall, Delay, Truncated, *_AS_IS)):
            raise TypeError(
                f"ScriptedServer takes a list of replies, got one {type(script).__name__}: "
                f"wrap it in a list: ScriptedServer([{script!r}])"
            )
        else:
            self.add(script)

    def add(self, items: Iterable[ScriptItem]) -> None:
        """Append items, checking each now rather than at request time."""
        if self._function is not None:
            raise TypeError("This ScriptedServer answers with a function; it takes no items.")
        checked = list(items)
        for item in checked:
            if not callable(item):
                to_reply(item)
        self._items.extend(checked)
        self.held += len(checked)

    def take(self, request: ChatRequest) -> ScriptItem:
        """The item for ``request``; `ScriptError` when none is left."""
        if self._function is not None:
            return self._function
        if not self._items:
            raise ScriptError(
                f"flowgraph.testing: the script has no reply left for request "
                f"#{request.index + 1} (it held {_replies(self.held)}). "
                "Add replies to the ScriptedServer script."
            )
        return self._items.popleft()


def _replies(count: int) -> str:
    return "1 reply" if count == 1 else f"{count} replies"


async def resolve(item: ScriptItem, request: ChatRequest) -> Outcome:
    """Call a callable item (awaiting an async one) and convert the result."""
    if callable(item):
        result: object = item(request)
        if inspect.isawaitable(result):
            result = await result
        return to_reply(result)
    return to_reply(item)


def to_reply(item: object) -> Outcome:
    """Convert an `Answer` to the `Outcome` it stands for, checking what faults hold."""
    if isinstance(item, _AS_IS):
        return item
    if isinstance(item, Delay):
        if not callable(item.then):
            to_reply(item.then)
        return item
    if isinstance(item, Truncated):
        return Truncated(item.after, _cut_reply(item.reply), item.clean)
    if isinstance(item, str):
        return Reply(content=item)
    if isinstance(item, ToolCall):
        return Reply(tool_calls=(item,))
    if isinstance(item, (list, tuple)) and item and all(isinstance(i, ToolCall) for i in item):
        return Reply(tool_calls=tuple(item))
    raise TypeError(
        "A script item must be a str, a ToolCall, a non-empty list of ToolCall, a Reply, "
        "an error(...), a fault (delay, drop, malformed, truncated) or a callable "
        f"returning one of these; got {item!r}. For an empty reply use Reply()."
    )


def _cut_reply(item: object) -> Reply:
    reply = to_reply(item)
    if not isinstance(reply, Reply):
        raise TypeError(f"truncated() cuts a reply: text, tool calls or a Reply; got {item!r}.")
    return reply


# -- OpenAI JSON -----------------------------------------------------------------------------


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> bytes:
    """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
    error = {"message": message, "type": type, "param": param, "code": code}
    return json.dumps({"error": error}).encode()


class CompletionWriter:
    """Serialize replies; owns the counters behind completion and tool call ids."""

    def __init__(self) -> None:
        self._completions = itertools.count(1)
        self._calls = itertools.count(1)

    def completion(self, reply: Reply, request: ChatRequest) -> bytes:
        """The ``chat.completion`` JSON answering ``request``."""
        choices = [
            {
                "index": index,
                "message": self._message(reply),
                "logprobs": None,
                "finish_reason": reply.finish,
            }
            for index in range(_choice_count(request))
        ]
        body = self._envelope("chat.completion", request)
        body["choices"] = choices
        body["usage"] = usage(reply, request)
        return json.dumps(body).encode()

    def events(self, reply: Reply, request: ChatRequest) -> list[bytes]:
        """The SSE events of a streamed answer, ``data: [DONE]`` included."""
        base = self._envelope("chat.completion.chunk", request)
        options = request.body.get("stream_options") or {}
        with_usage = options.get("include_usage") is True
        # The envelope is the same in every chunk: serialize it once, then only the deltas.
        head = b"data: " + json.dumps(base).encode()[:-1] + b', "choices": [{"index": '
        tail = b', "usage": null}\n\n' if with_usage else b"}\n\n"
        events = [
            head + _choice_json(index, delta, finish) + tail
            for index in range(_choice_count(request))
            for delta, finish in self._deltas(reply)
        ]
        if with_usage:
            last = {**base, "choices": [], "usage": usage(reply, request)}
            events.append(b"data: " + json.dumps(last).encode() + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events

    def _envelope(self, kind: str, request: ChatRequest) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-flowgraph{next(self._completions)}",
            "object": kind,
            "created": int(time.time()),
            "model": request.model,
        }

    def _message(self, reply: Reply) -> dict[str, Any]:
        content = reply.content
        if content is None and not reply.tool_calls:
            content = ""
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or self._call_id(),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in reply.tool_calls
            ]
        return message

    def _deltas(self, reply: Reply) -> list[tuple[dict[str, Any], str | None]]:
        """The deltas of one choice: role, content pieces, tool calls, finish."""
        content = reply.content
        if content is None and not reply.tool_calls:
            content = ""
        first: dict[str, Any] = {"role": "assistant", "content": "" if content else content}
        first["refusal"] = None
        deltas = [first] + [{"content": piece} for piece in _pieces(content or "", 4)]
        for index, call in enumerate(reply.tool_calls):
            head = {"name": call.name, "arguments": ""}
            opening = {"index": index, "id": call.id or self._call_id(), "type": "function"}
            deltas.append({"tool_calls": [{**opening, "function": head}]})
            deltas.extend(
                {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                for piece in _pieces(call.arguments, 3)
            )
        steps: list[tuple[dict[str, Any], str | None]] = [(delta, None) for delta in deltas]
        steps.append(({}, reply.finish))
        return steps

    def _call_id(self) -> str:
        return f"call_{next(self._calls)}"


def usage(reply: Reply, request: ChatRequest) -> dict[str, int]:
    """Token counts: ``reply.usage``, or deterministic word counts standing in for tokens."""
    if reply.usage is not None:
        prompt, completion = reply.usage
    else:
        prompt = _prompt_tokens(request)
        completion = _words(reply.content) + sum(
            3 + _words(call.arguments) for call in reply.tool_calls
        )
        completion = max(completion, 1) * _choice_count(request)
    total = prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def _prompt_tokens(request: ChatRequest) -> int:
    tokens = 3  # OpenAI primes every reply with a few tokens
    for message in request.messages:
        tokens += 4 + _words(_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            tokens += 3 + _words(call["function"]["arguments"])
    for tool in request.tools:
        tokens += 8 + _words(tool["function"].get("description"))
    return tokens


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


def _choice_count(request: ChatRequest) -> int:
    n = request.body.get("n")
    return n if isinstance(n, int) and n > 1 else 1


def _choice_json(index: int, delta: dict[str, Any], finish: str | None) -> bytes:
    """A streamed choice, from after its opening ``{"index": `` to its closing ``]``."""
    finish_json = b"null" if finish is None else json.dumps(finish).encode()
    delta_json = json.dumps(delta).encode()
    return b'%d, "delta": %s, "logprobs": null, "finish_reason": %s}]' % (
        index,
        delta_json,
        finish_json,
    )


def _pieces(text: str, count: int) -> list[str]:
    """Split ``text`` into at most ``count`` pieces, as a model streams tokens."""
    if not text:
        return []
    size = -(-len(text) // count)
    return [text[start : start + size] for start in range(0, len(text), size)]
