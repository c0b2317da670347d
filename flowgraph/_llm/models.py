"""Models: anything that answers a chat completion request. ``OpenAIModel`` talks HTTP."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from flowgraph._base.bridge import close_with_loop
from flowgraph._base.context import Usage
from flowgraph._base.errors import ConfigurationError, FlowValidationError
from flowgraph._base.messages import Message
from flowgraph._base.retry import Retry

if TYPE_CHECKING:
    from openai import AsyncOpenAI

DEFAULT_OPENAI_MODEL = "gpt-4.1-mini"


@dataclass(frozen=True)
class Completion:
    """One answer of a model: an assistant message (OpenAI format) and its usage."""

    message: Message
    usage: Usage


@runtime_checkable
class Model(Protocol):
    """What flowgraph needs of a model. Implement it to plug in anything else.

    Example:
        >>> class Echo:
        ...     name = "echo"
        ...     async def complete(self, messages, *, tools=None, response_format=None):
        ...         text = messages[-1]["content"]
        ...         return Completion({"role": "assistant", "content": text}, Usage(requests=1))
    """

    name: str

    async def complete(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Completion: ...


@dataclass(frozen=True)
class Delta:
    """A piece of a reply as a streaming model sends it: text, or a piece of the tool
    call at ``index`` (its id and name first, then its arguments)."""

    text: str = ""
    index: int | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""


OnDelta = Callable[[Delta], Awaitable[None]]


@runtime_checkable
class StreamingModel(Protocol):
    """A model that can also send its reply piece by piece (``OpenAIModel`` can): a
    streamed run asks it so. ``on_delta`` is awaited for each piece; the ``Completion``
    returned is the whole reply, as ``complete`` would give it."""

    async def stream(
        self,
        messages: list[Message],
        *,
        on_delta: OnDelta,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Completion: ...


def deltas_of(message: Message) -> list[Delta]:
    """A whole reply as the pieces a streaming model would have sent: its text, then
    each tool call (for a model that does not stream)."""
    deltas = [Delta(text=message["content"])] if message.get("content") else []
    for index, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        deltas.append(
            Delta(
                index=index,
                call_id=call.get("id"),
                name=function.get("name"),
                arguments=function.get("arguments") or "",
            )
        )
    return deltas


def check_model(model: object, owner: str) -> None:
    """``model`` is None or a ``Model``; else a ``FlowValidationError`` naming ``owner``."""
    if model is None or isinstance(model, Model):
        return
    fix = "pass fg.OpenAIModel(name), fg.LocalModel() or an object with .name and async .complete()"
    if isinstance(model, str):
        fix = f"pass fg.OpenAIModel({model!r}) (a name alone says nothing of the server)"
    raise FlowValidationError(f"{owner}: model={model!r} is not a model: {fix}")


class OpenAIModel:
    """A model behind any OpenAI-compatible chat completions endpoint.

    OpenAI itself, Azure, vLLM, Ollama, llama.cpp: set ``base_url`` (and ``api_key``)
    for the others. ``settings`` (``temperature=0``, ``seed=1``, ...) are sent with
    every request. ``timeout`` configures the client (the openai default: 600 s).
    flowgraph retries failed requests itself (429 after its Retry-After, 5xx,
    timeouts, dropped connections), so the client's own retries are turned off:
    ``max_retries`` sets this model's default policy, ``fg.Retry(attempts=max_retries
    + 1)``, which a flow's or an agent's ``retry=`` overrides. Pass ``client`` to
    reuse an ``openai.AsyncOpenAI`` you configured (a copy without retries is used).

    Example:
        >>> model = OpenAIModel("gpt-4.1-mini", temperature=0)
        >>> model
        OpenAIModel('gpt-4.1-mini')
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        client: AsyncOpenAI | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        **settings: Any,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError(f"OpenAIModel takes the model's name as text, got {model!r}")
        self.name = model
        self.base_url = base_url
        self.settings = settings
        self.retry = Retry(attempts=max_retries + 1) if max_retries is not None else None
        self._client_options: dict[str, Any] = {"max_retries": 0}
        if timeout is not None:
            self._client_options["timeout"] = timeout
        self._api_key = api_key
        self._client = client.with_options(max_retries=0) if client is not None else None
        # httpx connections belong to the event loop that opened them: one client per
        # loop, closed when that loop ends or when this model is dropped.
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncOpenAI, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"{type(self).__name__}({self.name!r}{where})"

    def client(self) -> AsyncOpenAI:
        """The ``AsyncOpenAI`` client for the running event loop."""
        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        if (held := self._clients.get(loop)) is not None:
            return held[0]
        # Deferred: importing openai takes longer than importing all of flowgraph,
        # and many programs import flowgraph without sending a request.
        from openai import AsyncOpenAI

        client = AsyncOpenAI(
            base_url=self.base_url, api_key=self._api_key or _env_key(), **self._client_options
        )
        self._clients[loop] = (client, close_with_loop(client.close))
        return client

    async def complete(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Completion:
        """One request; ``settings`` are sent besides the model's own (an agent's)."""
        body = self._request(messages, tools, response_format, settings)
        # The client's post, not chat.completions.create(): create() walks every message
        # of the history through its type transform, on every request, so a long run
        # cost the square of its length in CPU. The history is JSON already (the engine
        # holds it so); the client still brings its auth, base URL, headers and errors.
        response = await self.client().post(
            "/chat/completions",
            body=body,
            cast_to=object,  # the JSON as it came: no model of it built (see _completion)
            options=cast(Any, self._options),  # openai's RequestOptions, a TypedDict
        )
        return _completion(response)

    async def stream(
        self,
        messages: list[Message],
        *,
        on_delta: OnDelta,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Completion:
        """``complete``, the reply streamed: ``on_delta`` is awaited with each piece
        as it arrives; usage comes from the last chunk (``stream_options``)."""
        from openai import AsyncStream  # deferred with openai (see client())

        body = self._request(messages, tools, response_format, settings)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        chunks = await self.client().post(
            "/chat/completions",
            body=body,
            cast_to=object,
            options=cast(Any, self._options),
            stream=True,
            stream_cls=AsyncStream[object],  # each chunk's JSON as it came
        )
        reply = _Assembled()
        async with chunks:
            async for chunk in chunks:
                for delta in reply.add(chunk):
                    await on_delta(delta)
        if not reply.finished:
            # The server closed the stream before the reply said it was over: a cut, as a
            # dropped connection is (and, as that, worth another try).
            raise StreamCut(f"the stream of {self.name} ended before its reply's end")
        return reply.completion()

    def _request(
        self,
        messages: list[Message],
        tools: list[dict[str, Any]] | None,
        response_format: dict[str, Any] | None,
        settings: dict[str, Any] | None,
    ) -> dict[str, Any]:
        body = {"model": self.name, "messages": messages, **self._body, **(settings or {})}
        if tools:
            body["tools"] = tools
        if response_format is not None:
            body["response_format"] = response_format
        return body

    @functools.cached_property
    def _body(self) -> dict[str, Any]:
        """The settings sent in every request's body."""
        return {key: value for key, value in self.settings.items() if key not in REQUEST_OPTIONS}

    @functools.cached_property
    def _options(self) -> dict[str, Any]:
        """The settings that are options of the HTTP request, as ``create()`` takes them
        (``extra_headers``, ``extra_query``, ``extra_body``, ``timeout``)."""
        return {
            REQUEST_OPTIONS[key]: value
            for key, value in self.settings.items()
            if key in REQUEST_OPTIONS
        }


# create()'s keyword arguments that are request options, not body fields.
REQUEST_OPTIONS = {
    "extra_headers": "headers",
    "extra_query": "params",
    "extra_body": "extra_json",
    "timeout": "timeout",
}


def _env_key() -> str:
    # The openai client insists on a key; local servers ignore it.
    return os.environ.get("OPENAI_API_KEY") or "not-needed"


def _completion(body: object) -> Completion:
    """The reply as flowgraph keeps it, read from the server's JSON as it came (the
    client builds no model of it). Nothing a server sends is trusted: a name, an id or
    arguments that are not text become text (a tool by a name no tool has is answered
    as unknown), usage that is not a count counts 0."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise ValueError(f"the server's answer is not a chat completion: {str(body)[:200]}")
    usage = _usage(body.get("usage"))
    choice = _first(body["choices"])
    reply = _dict(choice.get("message")) if choice is not None else {}
    message: Message = {"role": "assistant", "content": reply.get("content")}
    calls = [call for call in _list(reply.get("tool_calls")) if _dict(call).get("function")]
    if calls:
        message["tool_calls"] = [
            _call_message(
                call.get("id"),
                _dict(call["function"]).get("name"),
                _dict(call["function"]).get("arguments"),
                index,
            )
            for index, call in enumerate(calls)
        ]
    return Completion(message, usage)


def _usage(usage: object) -> Usage:
    counts = _dict(usage)
    return Usage(
        requests=1,
        prompt_tokens=_count(counts.get("prompt_tokens")),
        completion_tokens=_count(counts.get("completion_tokens")),
    )


def _first(choices: object) -> dict[str, Any] | None:
    """The first choice (index 0) of a completion or a chunk, if it has one."""
    for choice in _list(choices):
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    return value if isinstance(value, str) or value is None else str(value)


class StreamCut(ConnectionError):
    """A streamed reply stopped before its end (no ``finish_reason``, no ``[DONE]``)."""


class _Assembled:
    """A streamed reply put together from its chunks (the server's JSON, as for
    ``_completion``), as the plain reply would be: the first choice's text and tool
    calls (by their index), and the usage."""

    def __init__(self) -> None:
        self.text: list[str] | None = None  # None: no chunk had content, not even ""
        self.calls: dict[int, list[Any]] = {}  # index: [id, name, argument pieces]
        self.usage = Usage(requests=1)
        self.finished = False  # a chunk gave the reply's finish_reason

    def add(self, chunk: object) -> list[Delta]:
        chunk = _dict(chunk)
        if chunk.get("usage") is not None:
            self.usage = _usage(chunk["usage"])
        choice = _first(chunk.get("choices"))
        if choice is None:
            return []
        self.finished = self.finished or choice.get("finish_reason") is not None
        delta = _dict(choice.get("delta"))
        deltas = []
        content = delta.get("content")
        if isinstance(content, str):
            if self.text is None:
                self.text = []
            self.text.append(content)
            if content:
                deltas.append(Delta(text=content))
        for piece in _list(delta.get("tool_calls")):
            deltas.append(self._call_piece(_dict(piece)))
        return deltas

    def _call_piece(self, piece: dict[str, Any]) -> Delta:
        index = piece.get("index")
        index = index if isinstance(index, int) and index >= 0 else len(self.calls)
        call = self.calls.setdefault(index, [None, None, []])
        function = _dict(piece.get("function"))
        call_id, name = _text(piece.get("id")), _text(function.get("name"))
        arguments = function.get("arguments")
        call[0], call[1] = call_id or call[0], name or call[1]
        if isinstance(arguments, str):
            call[2].append(arguments)
        pieces = arguments if isinstance(arguments, str) else ""
        return Delta(index=index, call_id=call_id, name=name, arguments=pieces)

    def completion(self) -> Completion:
        text = "".join(self.text) if self.text is not None else None
        message: Message = {"role": "assistant", "content": text}
        calls = [
            _call_message(call_id, name, "".join(pieces), index)
            for index, (call_id, name, pieces) in sorted(self.calls.items())
            if name
        ]
        if calls:
            message["tool_calls"] = calls
        return Completion(message, self.usage)


def _call_message(call_id: Any, name: Any, arguments: Any, index: int) -> Message:
    if not isinstance(arguments, str):
        arguments = "" if arguments is None else json.dumps(arguments, default=str)
    return {
        "id": call_id if isinstance(call_id, str) and call_id else f"call_{index}",
        "type": "function",
        "function": {"name": name if isinstance(name, str) else str(name), "arguments": arguments},
    }


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
