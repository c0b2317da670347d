"""Script items, ChatRequest and the public names, without a server running."""

from __future__ import annotations

import pytest

import flowgraph.testing
from flowgraph.testing import (
    ChatRequest,
    Fault,
    Reply,
    ScriptedServer,
    ToolCall,
    error,
    tool_call,
)


def test_public_names() -> None:
    assert sorted(flowgraph.testing.__all__) == [
        "Answer",
        "CallDelta",
        "ChatRequest",
        "Delay",
        "Drop",
        "Fault",
        "Malformed",
        "Reply",
        "ScriptItem",
        "ScriptedServer",
        "ToolCall",
        "Truncated",
        "call_delta",
        "delay",
        "drop",
        "error",
        "malformed",
        "rate_limited",
        "streamed",
        "tool_call",
        "truncated",
    ]


def test_tool_call_arguments() -> None:
    assert tool_call("f") == ToolCall("f", "{}")
    assert tool_call("f", {"order_id": "A-1"}).arguments == '{"order_id": "A-1"}'
    assert tool_call("f", "{broken").arguments == "{broken"
    assert tool_call("f", id="call_9").id == "call_9"


def test_tool_call_arguments_must_be_text() -> None:
    with pytest.raises(TypeError, match=r"use tool_call\(name, \{\.\.\.\}\) to pass a dict"):
        ToolCall("f", {"a": 1})  # type: ignore[arg-type]


def test_reply_finish_reason_defaults() -> None:
    assert Reply("hi").finish == "stop"
    assert Reply(tool_calls=[tool_call("f")]).finish == "tool_calls"
    assert Reply("cut", finish_reason="length").finish == "length"
    assert Reply(tool_calls=[tool_call("f")]).tool_calls == (ToolCall("f"),)


def test_reply_rejects_other_tool_calls() -> None:
    with pytest.raises(TypeError, match=r"Reply\.tool_calls must hold ToolCall items"):
        Reply(tool_calls=[{"name": "f"}])  # type: ignore[list-item]


def test_error_defaults() -> None:
    assert error(500) == Fault(
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
    )
    assert error(429).type == "requests"
    assert error(404).type == "invalid_request_error"
    assert error(418).message == "I'm a Teapot (scripted by flowgraph.testing)."
    assert error(400, "bad", type="custom", headers={"x-a": "1"}) == Fault(
        400, "bad", "custom", {"x-a": "1"}
    )


def test_error_status_must_be_an_error() -> None:
    with pytest.raises(ValueError, match="An error status is 400-599, got 200"):
        error(200)


def test_error_headers_must_be_one_line() -> None:
    with pytest.raises(ValueError, match="is not one line of Latin-1 text"):
        error(500, headers={"x-a": "1\r\nx-b: 2"})


def test_bad_script_items_fail_at_construction() -> None:
    with pytest.raises(TypeError, match=r"A script item must be a str, .* got 42\."):
        ScriptedServer(["fine", 42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"For an empty reply use Reply\(\)"):
        ScriptedServer([[]])


def test_a_single_reply_must_be_wrapped_in_a_list() -> None:
    with pytest.raises(TypeError, match=r"wrap it in a list: ScriptedServer\(\['Hello'\]\)"):
        ScriptedServer("Hello")


def test_function_scripts_take_no_items() -> None:
    server = ScriptedServer(lambda request: "hi")
    with pytest.raises(TypeError, match="answers with a function; it takes no items"):
        server.add("more")


def test_chat_request_views() -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "developer",
                "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
            },
            {"role": "user", "content": "Hi"},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup"}}],
        "stream": True,
        "response_format": {"type": "json_object"},
    }
    request = ChatRequest.from_body(body, index=3)
    assert request.system == "Be brief."
    assert request.last_message == {"role": "user", "content": "Hi"}
    assert request.tool_names == ["lookup"]
    assert request.stream is True
    assert request.response_format == {"type": "json_object"}
    assert request.index == 3


def test_chat_request_of_a_junk_body() -> None:
    request = ChatRequest.from_body({"model": 4, "messages": "Hi", "tools": [1]}, index=0)
    assert (request.model, request.messages, request.tools, request.tool_names) == ("", [], [], [])
    assert request.last_message == {}
    assert request.system is None
