"""`ScriptedServer`: an OpenAI-compatible chat completions server answering from a script."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from flowgraph._llm.models import OpenAIModel
from flowgraph.testing._errors import ScriptError, ServerStateError, kind_of
from flowgraph.testing._faults import (
    Delay,
    Drop,
    Malformed,
    Outcome,
    ScriptFunction,
    ScriptItem,
    Truncated,
)
from flowgraph.testing._http import (
    Hangup,
    HttpRequest,
    HttpResponse,
    HttpServer,
    ServerThread,
    raise_open_file_limit,
)
from flowgraph.testing._invalid import InvalidRequest
from flowgraph.testing._items import ChatRequest, Fault, Reply
from flowgraph.testing._script import (
    CompletionWriter,
    Script,
    error_body,
    resolve,
    to_reply,
)
from flowgraph.testing._strict import check_chat_request

_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
_MODEL_PATHS = ("/v1/models", "/models")
_NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)
_MODELS = json.dumps(
    {
        "object": "list",
        "data": [{"id": "scripted", "object": "model", "created": 0, "owned_by": "flowgraph"}],
    }
).encode()
_SSE = "text/event-stream; charset=utf-8"


class ScriptedServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 that answers from a script.

    Test a flow through the real ``openai`` client and real HTTP: each chat
    completions request takes the next script item. Requests are checked as
    strictly as OpenAI checks them first; an invalid one gets HTTP 400 and
    does not use up an item. The server runs in a daemon thread with its own
    event loop, so sync and async clients, scripts and notebooks all work.

    Args:
        script: Items consumed in order, one per request (see `ScriptItem`), or one
            function of the `ChatRequest` answering every request.
        latency: Seconds slept before answering each chat request.
        stream_delay: Seconds between the events of a streamed answer.

    Attributes:
        requests: Every chat request received, in order, rejected ones included.
        errors: Problems of the script itself: exceptions raised by callable items, and
            requests that found the script exhausted (each was also answered with a 400).

    Script callables run on the server's event loop: keep them quick, or make
    them async to wait.

    Besides replies and ``error(...)``, an item may be a fault, to test timeouts,
    retries and failures: ``delay(seconds, then=item)``, ``drop()`` (hang up
    without answering; ``after_headers=True``: after the headers), ``malformed()``
    (a 200 that is not JSON), ``truncated(after=k)`` (a stream cut after k events,
    without ``[DONE]``) and ``rate_limited(retry_after=s)`` (a 429). A fault uses up
    its item and is recorded in `requests` like any request. `stop` cancels pending
    delays.

    Example:
        >>> import openai
        >>> from flowgraph.testing import ScriptedServer, tool_call
        >>> with ScriptedServer(["Hello!", tool_call("lookup", {"id": 1})]) as server:
        ...     client = openai.OpenAI(base_url=server.url, api_key="test")
        ...     reply = client.chat.completions.create(
        ...         model="scripted", messages=[{"role": "user", "content": "Hi"}]
        ...     )
        >>> reply.choices[0].message.content
        'Hello!'
    """

    def __init__(
        self,
        script: Iterable[ScriptItem] | ScriptFunction,
        *,
        latency: float = 0.0,
        stream_delay: float = 0.0,
    ) -> None:
        self._script = Script(script)
        self.latency = latency
        self.stream_delay = stream_delay
        self.requests: list[ChatRequest] = []
        self.errors: list[Exception] = []
        self._writer = CompletionWriter()
        self._thread: ServerThread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (the last one, once stopped)."""
        if self._port is None:
            raise ServerStateError(
                "The ScriptedServer has not started: use `with server:` or start()."
            )
        return self._port

    @property
    def url(self) -> str:
        """The ``base_url`` for an openai client: ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def add(self, *items: ScriptItem) -> None:
        """Append replies to the script, even while the server runs.

        Example:
            >>> from flowgraph.testing import ScriptedServer, tool_call
            >>> server = ScriptedServer(["first"])
            >>> server.add("second", tool_call("lookup"))
        """
        self._script.add(items)

    def start(self) -> None:
        """Start serving on a free port; return once the server accepts connections."""
        if self._thread is not None:
            raise ServerStateError("The ScriptedServer is already running.")
        raise_open_file_limit()
        thread = ServerThread(HttpServer(self._handle))
        self._port = thread.start()
        self._thread = thread

    def stop(self) -> None:
        """Stop serving and close all connections. Safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()

    def model(self, name: str = "scripted", **settings: Any) -> OpenAIModel:
        """A `flowgraph.OpenAIModel` pointed at this server.

        Example:
            >>> with ScriptedServer(["Hi"]) as server:  # doctest: +SKIP
            ...     model = server.model(temperature=0)
        """
        return OpenAIModel(name, base_url=self.url, api_key="test", **settings)

    def __enter__(self) -> ScriptedServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> ScriptedServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- request handling (runs in the server thread) --------------------------------------

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        if request.path in _CHAT_PATHS and request.method == "POST":
            return await self._chat(request)
        if request.method == "GET" and request.path in _MODEL_PATHS:
            return HttpResponse(200, _MODELS)
        if request.method == "GET" and request.path.startswith(_MODEL_PATHS[0] + "/"):
            return _model(request.path.rpartition("/")[2])
        message = f"Invalid URL ({request.method} {request.path})"
        return HttpResponse(404, error_body(message, "invalid_request_error"))

    async def _chat(self, http: HttpRequest) -> HttpResponse:
        response = await self._respond(http)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        return response

    async def _respond(self, http: HttpRequest) -> HttpResponse:
        try:
            body = json.loads(http.body)
        except ValueError:  # also catches bytes that are not UTF-8
            return _invalid(InvalidRequest(_NOT_JSON))
        try:
            check_chat_request(body)
        except InvalidRequest as exc:
            if isinstance(body, dict):
                self._record(http, body, exc.message)
            return _invalid(exc)
        return await self._answer(self._record(http, body, None))

    def _record(
        self, http: HttpRequest, body: dict[str, Any], rejection: str | None
    ) -> ChatRequest:
        index = len(self.requests)
        request = ChatRequest.from_body(
            body, index, path=http.path, headers=http.headers, rejection=rejection
        )
        self.requests.append(request)
        return request

    async def _answer(self, request: ChatRequest) -> HttpResponse:
        try:
            outcome = await self._outcome(request)
        except ScriptError as exc:
            self.errors.append(exc)
            return _invalid(InvalidRequest(str(exc)))
        except Exception as exc:  # a failing test callback must reach the test, not kill us
            self.errors.append(exc)
            return _invalid(InvalidRequest(_callback_failed(request, exc)))
        return self._serve(outcome, request)

    async def _outcome(self, request: ChatRequest) -> Outcome:
        """The script's answer to ``request``, once any delays have passed."""
        outcome = await resolve(self._script.take(request), request)
        while isinstance(outcome, Delay):
            await asyncio.sleep(outcome.seconds)  # stop() cancels it, closing the connection
            outcome = await resolve(outcome.then, request)
        return outcome

    def _serve(self, outcome: Outcome, request: ChatRequest) -> HttpResponse:
        if isinstance(outcome, Reply):
            return self._completion(outcome, request)
        if isinstance(outcome, Fault):
            body = error_body(outcome.message, outcome.type)
            return HttpResponse(outcome.status, body, headers=outcome.headers)
        if isinstance(outcome, Malformed):
            return self._malformed(outcome, request)
        if isinstance(outcome, Truncated):
            return self._truncated(outcome, request)
        if isinstance(outcome, Drop) and outcome.after_headers:
            return dataclasses.replace(self._completion(Reply(""), request), cut_after=0)
        raise Hangup  # drop(): not a byte of answer

    def _completion(self, reply: Reply, request: ChatRequest) -> HttpResponse:
        if not request.stream:
            body = self._writer.completion(reply, request)
            return HttpResponse(200, body, headers=_request_id(request))
        return self._stream(self._writer.events(reply, request), request)

    def _stream(self, events: list[bytes], request: ChatRequest) -> HttpResponse:
        return HttpResponse(
            200,
            content_type=_SSE,
            headers=_request_id(request),
            chunks=events,
            chunk_delay=self.stream_delay,
        )

    def _malformed(self, fault: Malformed, request: ChatRequest) -> HttpResponse:
        body = fault.body.encode()
        if not request.stream:
            headers = _request_id(request)
            return HttpResponse(200, body, content_type=fault.content_type, headers=headers)
        event = b"".join(b"data: " + line + b"\n" for line in body.split(b"\n")) + b"\n"
        return self._stream([event, b"data: [DONE]\n\n"], request)

    def _truncated(self, fault: Truncated, request: ChatRequest) -> HttpResponse:
        reply = to_reply(fault.reply)
        assert isinstance(reply, Reply)  # the script checked it when the item was added
        response = self._completion(reply, request)
        if response.chunks is None:
            return _cut(response, len(response.body) // 2, fault.clean)
        return _cut(response, min(fault.after, len(response.chunks) - 1), fault.clean)


def _cut(response: HttpResponse, count: int, clean: bool) -> HttpResponse:
    """``response`` after ``count`` body bytes or chunks: ended there, or left unfinished."""
    if not clean:
        return dataclasses.replace(response, cut_after=count)
    if response.chunks is None:
        return dataclasses.replace(response, body=response.body[:count])
    return dataclasses.replace(response, chunks=response.chunks[:count])


def _request_id(request: ChatRequest) -> dict[str, str]:
    return {"x-request-id": f"req_flowgraph{request.index}"}


def _invalid(problem: InvalidRequest) -> HttpResponse:
    body = error_body(problem.message, "invalid_request_error", problem.param, problem.code)
    return HttpResponse(400, body)


def _callback_failed(request: ChatRequest, exc: Exception) -> str:
    return (
        f"flowgraph.testing: the script item for request #{request.index + 1} "
        f"(server.requests[{request.index}]) raised {kind_of(exc)}: {exc}"
    )


def _model(name: str) -> HttpResponse:
    model = {"id": name, "object": "model", "created": 0, "owned_by": "flowgraph"}
    return HttpResponse(200, json.dumps(model).encode())
