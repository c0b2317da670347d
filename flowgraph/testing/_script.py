"""The script (what the scripted model answers, item by item) and the OpenAI JSON its
replies become.

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
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from flowgraph.testing._errors import ScriptError, ScriptItemError
from flowgraph.testing._faults import (
    Delay,
    Drop,
    Malformed,
    Outcome,
    ScriptFunction,
    ScriptItem,
    Truncated,
)
from flowgraph.testing._items import ChatRequest, Fault, Reply, ToolCall, text_of

# -- the script ------------------------------------------------------------------------------

_AS_IS = (Reply, Fault, Drop, Malformed)


class Script:
    """Items consumed in order, one per request; or one function for every request."""

    def __init__(self, script: Iterable[ScriptItem] | ScriptFunction) -> None:
        self._function: ScriptFunction | None = None
        self._items: deque[ScriptItem] = deque()
        self.held = 0  # items ever added: for the "it held N replies" message
        if callable(script):
            self._function = script
        elif isinstance(script, (str, ToolCall, Delay, Truncated, *_AS_IS)):
            raise ScriptItemError(
                f"ScriptedServer takes a list of replies, got one {type(script).__name__}: "
                f"wrap it in a list: ScriptedServer([{script!r}])"
            )
        elif isinstance(script, Iterable):
            self.add(script)
        else:
            raise ScriptItemError(
                f"ScriptedServer takes a list of replies or one function, got {script!r}"
            )

    def add(self, items: Iterable[ScriptItem]) -> None:
        """Append items, checking each now rather than at request time."""
        if self._function is not None:
            raise ScriptItemError("This ScriptedServer answers with a function; it takes no items.")
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
    """Convert an `Answer` to the `Outcome` it stands for, checking what faults hold.

    Example:
        >>> to_reply("Hello").content
        'Hello'
    """
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
    raise ScriptItemError(
        "A script item must be a str, a ToolCall, a non-empty list of ToolCall, a Reply, "
        "an error(...), a fault (delay, drop, malformed, truncated) or a callable "
        f"returning one of these; got {item!r}. For an empty reply use Reply()."
    )


def _cut_reply(item: object) -> Reply:
    reply = to_reply(item)
    if not isinstance(reply, Reply):
        raise ScriptItemError(
            f"truncated() cuts a reply: text, tool calls or a Reply; got {item!r}."
        )
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
        if with_usage and reply.usage_chunk:
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
        if reply.chunks is not None:
            return self._scripted_deltas(reply)
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

    def _scripted_deltas(self, reply: Reply) -> list[tuple[dict[str, Any], str | None]]:
        """The deltas of a `streamed` reply: role, then its pieces exactly, then finish."""
        assert reply.chunks is not None
        first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        if not any(isinstance(piece, str) for piece in reply.chunks):
            first["content"] = None
        deltas = [first]
        for piece in reply.chunks:
            if isinstance(piece, str):
                deltas.append({"content": piece})
                continue
            call: dict[str, Any] = {"index": piece.index}
            if piece.id is not None:
                call["id"], call["type"] = piece.id, "function"
            function = {"arguments": piece.arguments}
            if piece.name is not None:
                function["name"] = piece.name
            call["function"] = function
            deltas.append({"tool_calls": [call]})
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
        tokens += 4 + _words(text_of(message.get("content")))
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
