"""Faults through the real openai client: what each raises, and that retries recover."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from flowgraph.testing import (
    ChatRequest,
    ScriptedServer,
    ScriptItem,
    delay,
    drop,
    error,
    malformed,
    rate_limited,
    tool_call,
    truncated,
)

USER: list[Any] = [{"role": "user", "content": "Hi"}]
NO_RETRIES = {"max_retries": 0}


def client_for(server: ScriptedServer, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="test", **options)


def ask(client: openai.OpenAI) -> ChatCompletion:
    reply: ChatCompletion = client.chat.completions.create(model="scripted", messages=USER)
    return reply


def text_of(client: openai.OpenAI) -> str | None:
    return ask(client).choices[0].message.content


def stream(client: openai.OpenAI, received: list[ChatCompletionChunk]) -> None:
    """Stream an answer into ``received``, chunk by chunk, until it ends or fails."""
    chunks = client.chat.completions.create(model="scripted", messages=USER, stream=True)
    with chunks:
        received.extend(chunks)


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start a ScriptedServer and open clients on it; close them all afterwards."""
    servers: list[ScriptedServer] = []
    clients: list[openai.OpenAI] = []

    def start(script: Any, **client_options: Any) -> tuple[ScriptedServer, openai.OpenAI]:
        server = ScriptedServer(script)
        server.start()
        servers.append(server)
        clients.append(client_for(server, **client_options))
        return server, clients[-1]

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


# -- delay -----------------------------------------------------------------------------------


def test_delay_past_the_client_timeout_is_an_api_timeout_error(serve: Any) -> None:
    server, client = serve([delay(0.2, then="too late")], timeout=0.1, **NO_RETRIES)
    with pytest.raises(openai.APITimeoutError, match="Request timed out"):
        ask(client)
    assert len(server.requests) == 1
    # the fixture stops the server while the late answer is still pending


def test_delay_within_the_timeout_answers_late(serve: Any) -> None:
    _, client = serve([delay(0.15, then="late")], timeout=5, **NO_RETRIES)
    started = time.monotonic()
    assert text_of(client) == "late"
    assert time.monotonic() - started >= 0.15


def test_retry_after_a_timeout_takes_the_next_item(serve: Any) -> None:
    server, client = serve([delay(0.2, then="too late"), "on time"], timeout=0.1)
    assert text_of(client) == "on time"
    assert [request.headers["x-stainless-retry-count"] for request in server.requests] == [
        "0",
        "1",
    ]


def test_delay_with_an_async_client() -> None:
    async def main() -> str | None:
        async with ScriptedServer([delay(0.2, then="too late"), delay(0.2, "late"), "ok"]) as srv:
            impatient = openai.AsyncOpenAI(
                base_url=srv.url, api_key="test", timeout=0.1, max_retries=0
            )
            async with impatient:
                with pytest.raises(openai.APITimeoutError):
                    await impatient.chat.completions.create(model="scripted", messages=USER)
            patient = openai.AsyncOpenAI(base_url=srv.url, api_key="test", timeout=0.1)
            async with patient:  # the default two retries: the second one gets "ok"
                reply = await patient.chat.completions.create(model="scripted", messages=USER)
            assert len(srv.requests) == 3
            return reply.choices[0].message.content

    assert asyncio.run(main()) == "ok"


def test_delay_then_a_fault_or_a_function(serve: Any) -> None:
    script = [delay(0.05, then=drop()), delay(0.05, then=lambda request: f"#{request.index}")]
    _, client = serve(script, **NO_RETRIES)
    with pytest.raises(openai.APIConnectionError):
        ask(client)
    assert text_of(client) == "#1"


def test_stop_cancels_a_pending_delay() -> None:
    server = ScriptedServer([delay(30, then="never")])
    server.start()
    body = json.dumps({"model": "m", "messages": USER}).encode()
    head = f"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        while not server.requests:
            time.sleep(0.01)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
        assert sock.recv(1024) == b""  # closed without an answer


# -- drop ------------------------------------------------------------------------------------


def test_drop_is_an_api_connection_error(serve: Any) -> None:
    server, client = serve([drop()], **NO_RETRIES)
    with pytest.raises(openai.APIConnectionError, match="Connection error") as caught:
        ask(client)
    assert type(caught.value) is openai.APIConnectionError  # not its APITimeoutError subclass
    assert cause_of(caught.value) == "Server disconnected without sending a response."
    assert len(server.requests) == 1


def test_retry_after_a_drop_takes_the_next_item(serve: Any) -> None:
    server, client = serve([drop(), "ok"])
    assert text_of(client) == "ok"
    assert len(server.requests) == 2
    assert server.errors == []


def test_drop_after_headers(serve: Any) -> None:
    _, client = serve([drop(after_headers=True), drop(after_headers=True)], **NO_RETRIES)
    with pytest.raises(openai.APIConnectionError) as caught:
        ask(client)
    assert type(caught.value) is openai.APIConnectionError
    assert cause_of(caught.value).startswith(
        "peer closed connection without sending complete message body (received 0 bytes"
    )
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError) as caught:
        stream(client, received)
    assert cause_of(caught.value).endswith("(incomplete chunked read)")
    assert received == []


def test_retry_after_a_drop_after_headers_takes_the_next_item(serve: Any) -> None:
    _, client = serve([drop(after_headers=True), "ok"])
    assert text_of(client) == "ok"


def test_drop_on_the_wire() -> None:
    with ScriptedServer([drop(), drop(after_headers=True)]) as server:
        assert exchange(server.port) == b""
        head, _, body = exchange(server.port).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: " in head
    assert body == b""


# -- malformed -------------------------------------------------------------------------------


def test_malformed_body_is_a_json_decode_error(serve: Any) -> None:
    server, client = serve([malformed(), "never served"])  # default retries: none for this
    with pytest.raises(json.JSONDecodeError):
        ask(client)
    assert len(server.requests) == 1


def test_malformed_stream_event_is_a_json_decode_error(serve: Any) -> None:
    _, client = serve([malformed("{not json")], **NO_RETRIES)
    received: list[ChatCompletionChunk] = []
    with pytest.raises(json.JSONDecodeError):
        stream(client, received)
    assert received == []


def test_json_of_the_wrong_shape_is_not_validated_by_the_client(serve: Any) -> None:
    _, client = serve([malformed('{"object": "list"}')], **NO_RETRIES)
    reply = ask(client)
    assert isinstance(reply, ChatCompletion)
    assert reply.object == "list"  # type: ignore[comparison-overlap]
    assert reply.choices is None  # despite its type: the client does not validate


def test_a_body_that_is_not_json_comes_back_as_text(serve: Any) -> None:
    page = "<html><body>502 Bad Gateway</body></html>"
    _, client = serve([malformed(page, content_type="text/html")], **NO_RETRIES)
    reply: object = ask(client)
    assert reply == page  # create() returns the text: no exception at all


# -- truncated -------------------------------------------------------------------------------


def test_truncated_stream_fails_after_its_first_events(serve: Any) -> None:
    _, client = serve([truncated(after=2, reply="one two three four")], **NO_RETRIES)
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError) as caught:
        stream(client, received)  # raised while iterating, after create() returned: no retry
    assert type(caught.value) is openai.APIConnectionError
    assert cause_of(caught.value).endswith("(incomplete chunked read)")
    assert [chunk.choices[0].delta.content for chunk in received] == ["", "one t"]


def test_clean_truncated_stream_just_stops(serve: Any) -> None:
    call = tool_call("lookup_order", {"order_id": "A-1"})
    _, client = serve([truncated(after=3, reply=call, clean=True)], **NO_RETRIES)
    received: list[ChatCompletionChunk] = []
    stream(client, received)  # no error: only the finish reason and [DONE] are missing
    assert len(received) == 3
    assert [chunk.choices[0].finish_reason for chunk in received] == [None, None, None]


def test_truncated_stream_never_sends_done(serve: Any) -> None:
    _, client = serve([truncated(after=99, reply="short", clean=True)], **NO_RETRIES)
    received: list[ChatCompletionChunk] = []
    stream(client, received)
    assert received[-1].choices[0].finish_reason == "stop"  # every event but [DONE]


def test_truncated_plain_answer_is_a_connection_error_and_retried(serve: Any) -> None:
    server, client = serve([truncated(after=1), "ok"])
    assert text_of(client) == "ok"
    assert len(server.requests) == 2
    impatient = client.with_options(max_retries=0)
    server.add(truncated(after=1))
    with pytest.raises(openai.APIConnectionError) as caught:
        ask(impatient)
    assert type(caught.value) is openai.APIConnectionError
    cut = re.search(r"\(received (\d+) bytes, expected (\d+)\)$", cause_of(caught.value))
    assert cut is not None
    assert int(cut[1]) == int(cut[2]) // 2  # half of the JSON body


def test_clean_truncated_plain_answer_is_cut_json(serve: Any) -> None:
    _, client = serve([truncated(after=1, clean=True)], **NO_RETRIES)
    with pytest.raises(json.JSONDecodeError):
        ask(client)


def test_truncated_on_the_wire() -> None:
    body = json.dumps({"model": "m", "messages": USER, "stream": True}).encode()
    with ScriptedServer([truncated(after=1), truncated(after=1, clean=True)]) as server:
        cut = exchange(server.port, body)
        clean = exchange(server.port, body, keep_alive=False)
    assert cut.count(b"data: ") == 1
    assert not cut.endswith(b"0\r\n\r\n")
    assert clean.count(b"data: ") == 1
    assert clean.endswith(b"}\n\n\r\n0\r\n\r\n")


def test_faults_with_an_async_client() -> None:
    script: list[ScriptItem] = [drop(), "after a drop", truncated(after=1), malformed()]

    async def main(server: ScriptedServer) -> list[Any]:
        client = openai.AsyncOpenAI(base_url=server.url, api_key="test")
        outcomes: list[Any] = []
        async with client:
            reply = await client.chat.completions.create(model="scripted", messages=USER)
            outcomes.append(reply.choices[0].message.content)
            for create in (client.chat.completions.create,) * 2:
                try:
                    async with await create(model="m", messages=USER, stream=True) as chunks:
                        async for chunk in chunks:
                            outcomes.append(chunk)
                except (openai.APIConnectionError, json.JSONDecodeError) as exc:
                    outcomes.append(type(exc))
        return outcomes

    with ScriptedServer(script) as server:
        outcomes = asyncio.run(main(server))
    assert outcomes[0] == "after a drop"
    assert isinstance(outcomes[1], ChatCompletionChunk)  # the one event before the cut
    assert outcomes[2:] == [openai.APIConnectionError, json.JSONDecodeError]
    assert len(server.requests) == 4


# -- rate limits, validation, records --------------------------------------------------------


def test_rate_limited_is_a_rate_limit_error(serve: Any) -> None:
    _, client = serve([rate_limited(retry_after=2)], **NO_RETRIES)
    with pytest.raises(openai.RateLimitError, match="Error code: 429") as caught:
        ask(client)
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.response.headers["retry-after-ms"] == "2000"


def test_the_client_waits_as_rate_limited_asks(serve: Any) -> None:
    server, client = serve([rate_limited(retry_after=0.05), "ok"])
    started = time.monotonic()
    assert text_of(client) == "ok"
    assert time.monotonic() - started < 0.35  # its own first backoff would be 0.375 s or more
    assert len(server.requests) == 2


def test_faulted_requests_are_recorded(serve: Any) -> None:
    def answer(request: ChatRequest) -> Any:
        return [drop(), malformed(), truncated(after=0), error(500), "ok"][request.index]

    server, client = serve(answer, **NO_RETRIES)
    for expected in (openai.APIConnectionError, json.JSONDecodeError, openai.APIConnectionError):
        with pytest.raises(expected):
            ask(client)
    with pytest.raises(openai.InternalServerError):
        ask(client)
    assert text_of(client) == "ok"
    assert [request.index for request in server.requests] == [0, 1, 2, 3, 4]
    assert all(request.last_message == USER[0] for request in server.requests)
    assert server.errors == []


def test_faults_are_checked_when_scripted() -> None:
    with pytest.raises(ValueError, match=r"delay\(\) takes seconds >= 0, got -1"):
        delay(-1, then="x")
    with pytest.raises(ValueError, match=r"truncated\(\) takes after= a count of events >= 0"):
        truncated(after=-1)
    with pytest.raises(ValueError, match=r"retry_after >= 0 seconds"):
        rate_limited(retry_after=-1)
    with pytest.raises(TypeError, match=r"A script item must be a str, .* got 42\."):
        ScriptedServer([delay(0.1, then=42)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"truncated\(\) cuts a reply: text, tool calls or a"):
        ScriptedServer([truncated(after=1, reply=error(500))])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"wrap it in a list: ScriptedServer\(\[Drop\("):
        ScriptedServer(drop())  # type: ignore[arg-type]


def cause_of(error: BaseException) -> str:
    """The message of the transport error behind an openai error."""
    cause = error.__cause__
    assert cause is not None
    assert type(cause).__name__ == "RemoteProtocolError"
    return str(cause)


def exchange(port: int, body: bytes | None = None, keep_alive: bool = True) -> bytes:
    """Send one chat request on a raw socket; read until the server closes."""
    body = body or json.dumps({"model": "m", "messages": USER}).encode()
    connection = "" if keep_alive else "connection: close\r\n"
    head = f"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: {len(body)}\r\n{connection}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received
