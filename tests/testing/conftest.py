"""Fixtures for flowgraph.testing: a started server and a real openai client for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from flowgraph.testing import ScriptedServer

Scripted = Callable[..., tuple[ScriptedServer, openai.OpenAI]]


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    """Start a ScriptedServer; return it and a sync client without retries."""
    started: list[tuple[ScriptedServer, openai.OpenAI]] = []

    def start(script: Any, **options: Any) -> tuple[ScriptedServer, openai.OpenAI]:
        server = ScriptedServer(script, **options)
        server.start()
        client = openai.OpenAI(base_url=server.url, api_key="test", max_retries=0)
        started.append((server, client))
        return server, client

    yield start
    for server, client in started:
        client.close()
        server.stop()
