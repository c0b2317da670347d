"""Shared fixtures: a scripted OpenAI-compatible server on loopback, per test."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import flowgraph as fg
from flowgraph.testing import ScriptedServer

Serve = Callable[..., tuple[ScriptedServer, fg.OpenAIModel]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a scripted server; returns it and a model that talks to it (no retries)."""
    servers: list[ScriptedServer] = []

    def start(script: Any, **options: Any) -> tuple[ScriptedServer, fg.OpenAIModel]:
        server = ScriptedServer(script, **options)
        server.start()
        servers.append(server)
        return server, fg.OpenAIModel(
            "scripted", base_url=server.url, api_key="test", max_retries=0
        )

    yield start
    for server in servers:
        server.stop()


def roles(messages: list[dict[str, Any]]) -> list[str]:
    return [message["role"] for message in messages]


def interruptible() -> None:
    """A child's ``preexec_fn``: Ctrl-C reaches it even when this process was started
    with SIGINT ignored (a shell's background job), which a child inherits and Python
    then leaves ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def no_default_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """No default model: no OPENAI_API_KEY, and the bundled model as if not installed."""
    from flowgraph._llm import local

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(local, "gguf_path", lambda: None)
