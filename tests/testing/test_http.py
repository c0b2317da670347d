"""The HTTP layer on raw sockets: keep-alive, closing, chunked streams, bad input."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from flowgraph.testing import ScriptedServer

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}).encode()


@pytest.fixture
def port() -> Iterator[int]:
    with ScriptedServer(lambda request: "ok") as server:
        yield server.port


def post(body: bytes = BODY, headers: str = "", version: str = "HTTP/1.1") -> bytes:
    head = f"POST /v1/chat/completions {version}\r\nhost: x\r\ncontent-length: {len(body)}\r\n"
    return (head + headers + "\r\n").encode() + body


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, then read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_keep_alive_serves_requests_in_turn(port: int) -> None:
    received = exchange(port, post() + post(headers="connection: close\r\n"))
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert received.count(b'"content": "ok"') == 2
    assert b"connection: keep-alive\r\n" in received
    assert received.endswith(b"}")  # then the server closed, as asked


def test_http_10_closes_after_the_response(port: int) -> None:
    received = exchange(port, post(version="HTTP/1.0"))
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"connection: close" in head
    assert f"content-length: {len(body)}".encode() in head
    assert json.loads(body)["choices"][0]["message"]["content"] == "ok"


def test_streams_are_chunked(port: int) -> None:
    body = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    )
    received = exchange(port, post(body.encode(), headers="connection: close\r\n"))
    head, _, chunks = received.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head
    assert b"content-type: text/event-stream; charset=utf-8" in head
    assert b"data: [DONE]\n\n" in chunks
    assert chunks.endswith(b"\r\n0\r\n\r\n")


def test_malformed_request_line_is_a_400(port: int) -> None:
    received = exchange(port, b"HELLO\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Malformed request line: 'HELLO'" in received


def test_chunked_request_bodies_are_refused(port: int) -> None:
    data = b"POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
    received = exchange(port, data)
    assert received.startswith(b"HTTP/1.1 411 Length Required\r\n")
    assert b"send a Content-Length" in received


def test_oversized_headers_are_refused(port: int) -> None:
    data = post(headers=f"x-big: {'a' * (2 << 20)}\r\n")
    received = exchange(port, data)
    assert received.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


def test_server_keeps_serving_after_bad_input(port: int) -> None:
    exchange(port, b"HELLO\r\n\r\n")
    received = exchange(port, post(headers="connection: close\r\n"))
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
