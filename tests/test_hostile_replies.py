"""Issue 16, items 6 and 9: model replies a provider should not send, but some do. A
tool call whose name is null or a number, two calls sharing an id in one reply, ids
reused in a later turn, usage that is not a number: each is answered or counted as
well as it can be, and the run goes on (and resumes) instead of failing."""

from __future__ import annotations

import json
from typing import Any

import flowgraph as fg
from flowgraph.testing import malformed

from .conftest import Serve


def completion(message: dict[str, Any], usage: dict[str, Any] | None = None) -> str:
    """A chat completion body, as a provider sends it, with ``message`` as is."""
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "scripted",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": usage or {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )


def calls(*items: tuple[str, Any, dict[str, Any]]) -> dict[str, Any]:
    """An assistant message with tool calls: (id, name, arguments) each."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(a)}}
            for id_, name, a in items
        ],
    }


def charging_flow(model: fg.OpenAIModel, keys: list[str]) -> fg.Flow:
    def charge(amount: int, ctx: fg.RunContext) -> str:
        """Charge the customer."""
        keys.append(ctx.idempotency_key)
        return f"charged {amount}"

    flow = fg.Flow("charging", model=model)
    cashier = fg.Agent("cashier", "Charge.", tools=[charge])
    flow.edge(fg.START, cashier)
    flow.edge(cashier, fg.END)
    return flow


def test_a_tool_call_named_null_or_a_number_is_answered_as_an_unknown_tool(
    serve: Serve, tmp_path: Any
) -> None:
    server, model = serve(
        [
            malformed(completion(calls(("call_1", None, {}), ("call_2", 42, {})))),
            "Sorry, done.",
        ]
    )
    keys: list[str] = []
    result = charging_flow(model, keys).run("Charge 5", store=tmp_path / "runs.db")

    assert result.status == "completed" and result.output == "Sorry, done."
    answers = [m["content"] for m in result.messages if m["role"] == "tool"]
    assert answers == [
        "Error: there is no tool 'None'. Your tools: charge; hand-offs: none.",
        "Error: there is no tool '42'. Your tools: charge; hand-offs: none.",
    ]
    assert keys == []
    sent = server.requests[1].messages  # what went back to the provider
    assert [c["function"]["name"] for c in sent[2]["tool_calls"]] == ["None", "42"]


def test_two_calls_sharing_an_id_in_one_reply_both_run_under_their_own_keys(
    serve: Serve,
) -> None:
    _, model = serve(
        [
            malformed(
                completion(
                    calls(("call_1", "charge", {"amount": 5}), ("call_1", "charge", {"amount": 7}))
                )
            ),
            "Charged twice.",
        ]
    )
    keys: list[str] = []
    result = charging_flow(model, keys).run("Charge 5 and 7")

    assert result.status == "completed"
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 2
    answered = [m["tool_call_id"] for m in result.messages if m["role"] == "tool"]
    assert len(set(answered)) == 2


def test_ids_reused_in_a_later_turn_get_keys_of_their_own(serve: Serve) -> None:
    _, model = serve(
        [
            malformed(completion(calls(("call_1", "charge", {"amount": 5})))),
            malformed(completion(calls(("call_1", "charge", {"amount": 7})))),
            "Charged twice.",
        ]
    )
    keys: list[str] = []
    result = charging_flow(model, keys).run("Charge 5, then 7")

    assert result.status == "completed"
    assert len(keys) == 2 and keys[0] != keys[1]
    assert keys[0] == f"{result.run_id}:1:call_1"  # a unique id keeps its key


def test_usage_that_is_not_a_number_is_counted_as_none(serve: Serve) -> None:
    body = completion(
        {"role": "assistant", "content": "Hello."},
        usage={"prompt_tokens": "many", "completion_tokens": None, "total_tokens": [1]},
    )
    _, model = serve([malformed(body)])
    result = charging_flow(model, []).run("Hi")

    assert result.status == "completed" and result.output == "Hello."
    assert result.usage.requests == 1 and result.usage.prompt_tokens == 0


def test_json_that_is_not_a_chat_completion_fails_the_request_saying_so(serve: Serve) -> None:
    """Issue 18: replies are read from the server's JSON as it came (no model built):
    a body of another shape is an error naming it, never an empty reply."""
    import pytest

    _, model = serve([malformed('{"object": "list", "data": []}')])
    flow = fg.Flow("shapes", model=model)
    flow.edge(fg.START, fg.Agent("a", "Hi."))
    flow.edge("a", fg.END)
    with pytest.raises(fg.ModelError, match=r"not a chat completion: \{'object': 'list'"):
        flow.run("hi")
