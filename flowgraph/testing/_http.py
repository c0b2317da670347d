"""A minimal asyncio HTTP/1.1 server: just enough protocol for an OpenAI client.

It speaks keep-alive, ``Content-Length`` request bodies, ``Content-Length``
responses and chunked (SSE) responses, and nothing else. It knows nothing about
OpenAI: a handler turns each `HttpRequest` into an `HttpResponse`. To play a
failing server, a handler may raise `Hangup` (no answer at all) or cut a
response short (`HttpResponse.cut_after`).

Cheap CPU is a goal, because benchmarks measure the client's CPU while this
server runs in another process: headers are parsed with plain string splits
and a whole response goes out in one ``write``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

_MAX_HEAD = 1 << 20  # 1 MiB of request line and headers
_MAX_BODY = 64 << 20  # 64 MiB of body: long histories stay well under it
_BACKLOG = 4096  # the listen queue must absorb 1,000+ clients connecting at once
_LINGER = 1.0  # seconds to read what a refused client still sends
_HEAD_END = b"\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_REASONS = {status.value: status.phrase for status in HTTPStatus}


@dataclass(frozen=True)
class HttpRequest:
    """One parsed HTTP request.

    Attributes:
        method: ``GET``, ``POST``, ...
        path: The request target without its query string.
        headers: Header values by lowercased name.
        body: The raw body (empty without ``Content-Length``).
        version: ``HTTP/1.1`` or ``HTTP/1.0``.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    version: str = "HTTP/1.1"


@dataclass(frozen=True)
class HttpResponse:
    """What a handler answers.

    With ``chunks`` set the response is streamed with chunked transfer encoding,
    one HTTP chunk per item, ``chunk_delay`` seconds apart; otherwise ``body``
    is sent with a ``Content-Length``.

    ``cut_after`` leaves the response unfinished, as a server dying mid-answer
    does: after the head and that many body bytes (or chunks), the connection
    closes, without the terminating chunk.
    """

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: Sequence[bytes] | None = None
    chunk_delay: float = 0.0
    cut_after: int | None = None


class Hangup(Exception):
    """Raised by a handler: close the connection without answering the request."""


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class _BadRequest(Exception):
    """The bytes on the wire are not an HTTP request we can answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpServer:
    """Serve ``handler`` on ``host``: one task per connection, requests in order.

    Example:
        >>> async def handler(request: HttpRequest) -> HttpResponse:
        ...     return HttpResponse(200, b"{}")
        >>> server = HttpServer(handler)  # then: port = await server.start()
    """

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Start listening; return the bound port (a free one when ``port`` was 0)."""
        self._server = await asyncio.start_server(
            self._serve_connection, self._host, self._port, backlog=_BACKLOG, limit=_MAX_HEAD
        )
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        """Stop listening and end every open connection, in-flight requests included."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None  # start_server always runs this callback in a task
        self._connections.add(task)
        try:
            await self._request_loop(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or sent garbage: only this connection ends
        except asyncio.CancelledError:
            # Only close() cancels us. Ending normally spares asyncio's stream callback,
            # which logs a spurious error for a connection task that ends cancelled.
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _request_loop(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            try:
                request = await _read_request(reader)
            except _BadRequest as exc:
                writer.write(_encode(_plain_error(exc.status, str(exc)), keep_alive=False))
                await writer.drain()
                await _linger(reader, writer)
                return
            if request is None:
                return
            try:
                response = await self._handler(request)
            except Hangup:
                return
            except Exception as exc:  # a handler bug must not hang the client
                response = _plain_error(500, f"Unhandled error in the test server: {exc!r}")
            keep_alive = _wants_keep_alive(request)
            await _write_response(writer, response, keep_alive)
            if not keep_alive or response.cut_after is not None:
                return


async def _read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """Read one request; None on a clean end of stream between requests."""
    try:
        head = await reader.readuntil(_HEAD_END)
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None
    except asyncio.LimitOverrunError:
        raise _BadRequest(431, "Request header fields too large") from None
    method, path, version, headers = _parse_head(head)
    return HttpRequest(method, path, headers, await _read_body(reader, headers), version)


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read what the client still sends before closing, for a while.

    Closing with unread input makes the kernel reset the connection, and the
    client may then lose the error answer it has not read yet.
    """
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(_read_to_end(reader), _LINGER)


async def _read_to_end(reader: asyncio.StreamReader) -> None:
    while await reader.read(1 << 16):
        pass


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head[: -len(_HEAD_END)].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, f"Malformed request line: {lines[0][:100]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise _BadRequest(400, f"Malformed header line: {line[:100]!r}")
        headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1].partition("?")[0], parts[2], headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _BadRequest(411, "Chunked request bodies are not supported: send a Content-Length")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise _BadRequest(400, f"Invalid Content-Length: {length_text[:40]!r}")
    length = int(length_text)
    if length > _MAX_BODY:
        raise _BadRequest(413, f"Request body of {length} bytes is over {_MAX_BODY} bytes")
    return await reader.readexactly(length) if length else b""


def _wants_keep_alive(request: HttpRequest) -> bool:
    connection = request.headers.get("connection", "").lower()
    if request.version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"


async def _write_response(
    writer: asyncio.StreamWriter, response: HttpResponse, keep_alive: bool
) -> None:
    cut = response.cut_after
    if response.chunks is None:
        writer.write(_head(response, keep_alive) + response.body[:cut])
    else:
        chunks = response.chunks[:cut]
        ending = _LAST_CHUNK if cut is None else b""
        if response.chunk_delay <= 0:
            writer.write(_head(response, keep_alive) + b"".join(map(_chunk, chunks)) + ending)
        else:
            writer.write(_head(response, keep_alive))
            await _trickle(writer, chunks, response.chunk_delay)
            writer.write(ending)
    await writer.drain()


async def _trickle(writer: asyncio.StreamWriter, chunks: Sequence[bytes], delay: float) -> None:
    """Send chunks one at a time, so the client sees a stream arrive."""
    for chunk in chunks:
        writer.write(_chunk(chunk))
        await writer.drain()
        await asyncio.sleep(delay)


def _encode(response: HttpResponse, keep_alive: bool) -> bytes:
    return _head(response, keep_alive) + response.body


def _head(response: HttpResponse, keep_alive: bool) -> bytes:
    reason = _REASONS.get(response.status, "Unknown")
    lines = [f"HTTP/1.1 {response.status} {reason}", f"content-type: {response.content_type}"]
    if response.chunks is None:
        lines.append(f"content-length: {len(response.body)}")
    else:
        lines.append("transfer-encoding: chunked")
    lines.append("connection: keep-alive" if keep_alive else "connection: close")
    lines.extend(f"{name}: {value}" for name, value in response.headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _plain_error(status: int, message: str) -> HttpResponse:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return HttpResponse(status, json.dumps({"error": error}).encode())


class ServerThread:
    """Run an `HttpServer` on its own event loop in a daemon thread.

    The caller's thread never runs the server, so a blocking client (the sync
    ``openai.OpenAI``) can call it from the same thread, and the server works
    the same whether or not the caller has an event loop running (Jupyter).

    Example:
        >>> async def handler(request: HttpRequest) -> HttpResponse:
        ...     return HttpResponse(200, b"{}")
        >>> thread = ServerThread(HttpServer(handler))
        >>> port = thread.start()
        >>> thread.stop()
    """

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> int:
        """Start the thread and the server; return the port once it listens."""
        started: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(started),), name="flowgraph-testing", daemon=True
        )
        self._thread.start()
        return started.result(timeout)

    def stop(self) -> None:
        """Close the server and its connections, then end the thread."""
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join()

    async def _main(self, started: concurrent.futures.Future[int]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            port = await self._server.start()
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(port)
        try:
            await self._stopping.wait()
        finally:
            await self._server.close()


def raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one (best effort).

    Each client connection costs the server one descriptor, and the common soft
    limit of 1,024 would cap a same-process test at about 500 connections.
    """
    if sys.platform == "win32":
        return
    import resource  # here: the module does not exist on Windows

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
