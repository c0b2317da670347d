"""Issue 19: hand-offs as AG2 and openai-node users write them, and two tool-call bugs."""

from __future__ import annotations

import json
from typing import Any

import pytest

import flowgraph as fg
from flowgraph.testing import ScriptedServer, call_delta, malformed, streamed, tool_call

from .conftest import Serve


def completion(message: dict[str, Any]) -> str:
    """A chat completion body with ``message`` exactly as given."""
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "scripted",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )


def lookup(order_id: str) -> str:
    """Look an order up."""
    return f"{order_id}: delivered"


def clerk_flow(model: fg.Model, *tools: Any, **agent: Any) -> fg.Flow:
    flow = fg.Flow("desk", model=model)
    flow.edge(fg.START, fg.Agent("clerk", "Help.", tools=list(tools) or [lookup], **agent))
    flow.edge("clerk", fg.END)
    return flow


# -- 1. tool calls with an empty or missing id ------------------------------------------------


def call(id_: Any, order: str) -> dict[str, Any]:
    function = {"name": "lookup", "arguments": json.dumps({"order_id": order})}
    item: dict[str, Any] = {"type": "function", "function": function}
    if id_ is not ...:
        item["id"] = id_
    return item


@pytest.mark.parametrize("id_", ["", None, ...], ids=["empty", "null", "missing"])
def test_calls_without_an_id_get_unique_ones_and_the_run_completes(serve: Serve, id_: Any) -> None:
    reply = {
        "role": "assistant",
        "content": None,
        "tool_calls": [call(id_, "A-1"), call(id_, "B-2")],
    }
    server, model = serve([malformed(completion(reply)), "Both delivered."])

    result = clerk_flow(model).run("Where are A-1 and B-2?")

    assert (result.status, result.output) == ("completed", "Both delivered.")
    ids = [c["id"] for c in result.messages[1]["tool_calls"]]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 2
    answers = {m["tool_call_id"]: m["content"] for m in result.messages if m["role"] == "tool"}
    assert answers == {ids[0]: "A-1: delivered", ids[1]: "B-2: delivered"}
    assert server.requests[1].rejection is None  # the history sent back was valid


@pytest.mark.parametrize("id_", ["", None], ids=["empty", "missing"])
def test_streamed_calls_without_an_id_get_unique_ones(id_: str | None) -> None:
    pieces = [
        call_delta(0, id=id_, name="lookup", arguments='{"order_id": "A-1"}'),
        call_delta(1, id=id_, name="lookup", arguments='{"order_id": "B-2"}'),
    ]
    with ScriptedServer([streamed(*pieces), "Both delivered."]) as server:
        events = list(clerk_flow(server.model()).stream("Where are A-1 and B-2?"))
    result = events[-1].result  # type: ignore[union-attr]
    ids = [c["id"] for c in result.messages[1]["tool_calls"]]
    assert all(ids) and len(set(ids)) == 2 and result.output == "Both delivered."
    started = [e.call_id for e in events if e.type == "tool_started"]  # type: ignore[union-attr]
    assert sorted(started) == sorted(ids)


# -- 2. parallel_tool_calls=False, and no context update lost ----------------------------------


def add_one(ctx: fg.RunContext) -> str:
    """Add one to the counter."""
    n = ctx.context.get("n", 0)
    import time

    time.sleep(0.005)  # read, think, write: concurrent calls would overlap here
    ctx.context["n"] = n + 1
    return str(n + 1)


def test_twenty_parallel_calls_that_change_the_context_lose_no_update(serve: Serve) -> None:
    _, model = serve([[tool_call("add_one")] * 20, "Counted."])
    result = clerk_flow(model, add_one).run("Count to twenty.", context={"n": 0})
    assert result.context["n"] == 20


ORDER: list[str] = []


async def wait(label: str, seconds: float) -> str:
    """Wait a while."""
    import asyncio

    ORDER.append(f"start {label}")
    await asyncio.sleep(seconds)
    ORDER.append(f"end {label}")
    return label


SLOW_THEN_FAST = [
    tool_call("wait", {"label": "slow", "seconds": 0.2}),
    tool_call("wait", {"label": "fast", "seconds": 0.0}),
]


@pytest.mark.parametrize("where", ["model", "agent"])
def test_parallel_tool_calls_false_runs_a_turns_calls_one_after_another(
    serve: Serve, where: str
) -> None:
    server, model = serve([SLOW_THEN_FAST, "Done."])
    if where == "model":
        model = fg.OpenAIModel(
            "scripted", base_url=server.url, api_key="k", parallel_tool_calls=False
        )
        flow = clerk_flow(model, wait)
    else:
        flow = clerk_flow(model, wait, parallel_tool_calls=False)
    ORDER.clear()

    flow.run("Wait.")

    assert ORDER == ["start slow", "end slow", "start fast", "end fast"]
    assert server.requests[0].body["parallel_tool_calls"] is False


def test_by_default_a_turns_calls_run_at_once(serve: Serve) -> None:
    _, model = serve([SLOW_THEN_FAST, "Done."])
    ORDER.clear()
    clerk_flow(model, wait).run("Wait.")
    assert ORDER == ["start slow", "start fast", "end fast", "end slow"]


# -- 3. tool-driven hand-offs -------------------------------------------------------------------


def send_to_refunds(order_id: str) -> fg.Handoff:
    """Send the customer to the refund desk."""
    return fg.Handoff("refund", message=f"{order_id} goes to the refund desk.")


def send_to_billing() -> fg.Handoff:
    """Send the customer to billing."""
    return fg.Handoff("billing")


def desks(model: fg.Model, *tools: Any) -> fg.Flow:
    flow = fg.Flow("desks", model=model)
    triage = fg.Agent("triage", "Route.", tools=list(tools))
    flow.edge(fg.START, triage)
    flow.edge(triage, fg.Agent("refund", "Refund."), when="The customer wants money back.")
    flow.edge(triage, fg.Agent("shipping", "Ship."), when=lambda ctx: ctx.context.get("late"))
    flow.edge(triage, fg.END)
    flow.edge("refund", fg.END)
    flow.edge("shipping", fg.END)
    return flow


def test_a_tool_hands_off_right_after_its_result(serve: Serve) -> None:
    server, model = serve([tool_call("send_to_refunds", {"order_id": "A-1"}), "Refunded."])

    result = desks(model, send_to_refunds).run("A-1 broke.", context={"late": True})

    # The tool's choice wins, even over a predicate that holds, and triage asks no more.
    assert result.path == ["triage", "refund"] and result.output == "Refunded."
    assert len(server.requests) == 2
    answer = next(m for m in result.messages if m["role"] == "tool")
    assert answer["content"] == "A-1 goes to the refund desk."
    assert result.trace[0].next == "refund"


def test_a_tool_hand_off_to_an_undeclared_node_is_an_error_the_model_reads(serve: Serve) -> None:
    server, model = serve([tool_call("send_to_billing"), "Sorry, I cannot."])

    result = desks(model, send_to_billing).run("Bill me.")

    answer = next(m for m in result.messages if m["role"] == "tool")
    assert answer["content"] == (
        "Error: send_to_billing handed off to 'billing', but no edge from 'triage' leads "
        "there; the nodes it can hand off to: 'refund', 'shipping', 'END'."
    )
    assert result.path == ["triage"] and result.output == "Sorry, I cannot."
    assert len(server.requests) == 2


# -- 8. an agent that reaches max_turns says so ------------------------------------------------


def looping(model: fg.Model, **flow_options: Any) -> fg.Flow:
    flow = fg.Flow("loop", model=model, **flow_options)
    flow.edge(fg.START, fg.Agent("clerk", "Help.", tools=[lookup], max_turns=2))
    flow.edge("clerk", fg.END)
    return flow


LOOPING = [tool_call("lookup", {"order_id": "A-1"})] * 2


def test_max_turns_shows_in_the_reason_the_trace_and_the_picture(serve: Serve) -> None:
    _, model = serve(LOOPING)

    result = looping(model).run("Where is A-1?")

    assert result.status == "completed" and result.output is None
    assert result.reason == (
        "reached END; agent 'clerk' reached max_turns=2 without a final answer"
    )
    assert result.trace[0].max_turns_reached is True
    label = result.render().source.split("\tclerk [label=")[1].split("\n")[0]
    assert "max_turns reached, no final answer" in label


def test_a_flow_may_treat_max_turns_as_an_error(serve: Serve) -> None:
    _, model = serve(LOOPING)

    with pytest.raises(fg.MaxTurnsExceeded, match="agent 'clerk' reached max_turns=2") as caught:
        looping(model, on_max_turns="fail").run("Where is A-1?")
    assert caught.value.node == "clerk"
    assert caught.value.result is not None and caught.value.result.status == "failed"
    with pytest.raises(fg.FlowValidationError, match="on_max_turns must be 'go_on' or 'fail'"):
        fg.Flow("x", on_max_turns="explode")  # type: ignore[arg-type]


def test_the_cli_says_max_turns_was_reached(tmp_path: Any) -> None:
    import subprocess
    import sys

    source = tmp_path / "loop.py"
    source.write_text(
        "import flowgraph as fg\n"
        "def lookup(order_id: str) -> str:\n"
        "    '''Look an order up.'''\n"
        "    return 'delivered'\n"
        "flow = fg.Flow('loop')\n"
        "flow.edge(fg.START, fg.Agent('clerk', 'Help.', tools=[lookup], max_turns=2))\n"
        "flow.edge('clerk', fg.END)\n"
    )
    with ScriptedServer(LOOPING) as server:
        model = ["--model", "m", "--base-url", server.url, "--api-key", "k"]
        done = subprocess.run(
            [sys.executable, "-m", "flowgraph", "run", str(source), "hi", *model],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert "reached max_turns=2 without a final answer" in done.stderr.splitlines()[1]


def test_max_turns_reached_is_kept_in_the_store(serve: Serve, tmp_path: Any) -> None:
    import asyncio

    _, model = serve(LOOPING)
    result = looping(model).run("Where is A-1?", store=tmp_path / "runs.db")
    stored = asyncio.run(fg.SQLiteCheckpointer(tmp_path / "runs.db").load(result.run_id))
    assert stored is not None
    assert fg.StepRecord.model_validate(stored.trace[0]).max_turns_reached is True
    assert stored.reason == result.reason


# -- 7. a forced tool ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["agent", "model"])
def test_a_forced_tool_is_called_once_and_the_visit_ends_with_its_result(
    serve: Serve, where: str
) -> None:
    """openai-node's runTools: a tool_choice naming a function calls it and stops."""
    server, model = serve([tool_call("lookup", {"order_id": "A-1"})])
    forced = {"type": "function", "function": {"name": "lookup"}}
    if where == "model":
        model = fg.OpenAIModel("scripted", base_url=server.url, api_key="k", tool_choice=forced)
        flow = clerk_flow(model, lookup)
    else:
        flow = clerk_flow(model, lookup, tool_choice="lookup")

    result = flow.run("Where is A-1?")

    assert (result.output, result.usage.requests) == ("A-1: delivered", 1)
    assert server.requests[0].body["tool_choice"] == forced
    assert result.notes == []


def test_a_tool_choice_that_names_no_tool_of_the_agent_is_a_validation_error() -> None:
    with pytest.raises(fg.FlowValidationError, match="tool_choice names 'lokup'.*lookup"):
        clerk_flow(
            fg.OpenAIModel("m", base_url="http://127.0.0.1:9/v1"), lookup, tool_choice="lokup"
        ).validate()


# -- 4. conditions checked before the model is called -----------------------------------------


def test_a_before_condition_hands_off_with_no_request_and_no_message(serve: Serve) -> None:
    server, model = serve(["Welcome, VIP."])
    flow = fg.Flow("desks", model=model)
    triage = fg.Agent("triage", "Route.")
    flow.edge(fg.START, triage)
    flow.edge(
        triage,
        fg.Agent("vip_desk", "Serve VIPs."),
        when=lambda ctx: ctx.context["vip"],
        before=True,
    )
    flow.edge(triage, fg.END)
    flow.edge("vip_desk", fg.END)

    vip = flow.run("Hello.", context={"vip": True})
    assert vip.path == ["triage", "vip_desk"] and vip.output == "Welcome, VIP."
    assert len(server.requests) == 1 and server.requests[0].system == "Serve VIPs."
    assert [m["role"] for m in vip.messages] == ["user", "assistant"]  # no extra message
    assert vip.usage_by_node.get("triage", fg.Usage()).requests == 0


def test_before_needs_a_predicate_on_an_agents_edge() -> None:
    flow = fg.Flow("bad")
    with pytest.raises(fg.FlowValidationError, match="before=True needs a predicate"):
        flow.edge(fg.START, fg.Agent("a"), when="In words.", before=True)
    step = fg.ToolStep("s", lambda: 1)
    flow.edge(fg.START, step)
    flow.edge(step, fg.END, when=lambda ctx: True, before=True)
    with pytest.raises(fg.FlowValidationError, match="before=True: 's' is not an agent"):
        flow.validate()


# -- 5. conditions that change during the run -----------------------------------------------


def test_an_llm_condition_is_filled_from_the_context_at_each_request(serve: Serve) -> None:
    server, model = serve(["Hello Ada."])
    flow = fg.Flow("desks", model=model)
    triage = fg.Agent("triage", "Route.")
    flow.edge(fg.START, triage)
    flow.edge(triage, fg.Agent("refund"), when=fg.ContextStr("{customer} wants a refund"))
    flow.edge(triage, fg.END)
    flow.edge("refund", fg.END)

    flow.run("Hi.", context={"customer": "Ada"})

    (transfer,) = [
        t for t in server.requests[0].tools if t["function"]["name"] == "transfer_to_refund"
    ]
    assert transfer["function"]["description"].endswith("Use when: Ada wants a refund")


def test_a_hand_off_is_offered_only_while_its_available_predicate_holds(serve: Serve) -> None:
    server, model = serve(["Please verify first.", tool_call("transfer_to_refund"), "Refunded."])
    flow = fg.Flow("desks", model=model)
    triage = fg.Agent("triage", "Route.")
    flow.edge(fg.START, triage)
    flow.edge(
        triage,
        fg.Agent("refund", "Refund."),
        when="The customer wants money back.",
        available=lambda ctx: ctx.context.get("verified", False),
    )
    flow.edge(triage, fg.END)
    flow.edge("refund", fg.END)

    first = flow.run("Refund me.", context={"verified": False})
    second = flow.run("Refund me.", context={"verified": True})

    assert server.requests[0].tool_names == []  # not offered at all
    assert server.requests[1].tool_names == ["transfer_to_refund"]
    assert first.path == ["triage"] and second.path == ["triage", "refund"]


# -- 6. what the next agent sees of a hand-off --------------------------------------------------


def handed(model: fg.Model, history: str | None = None, **flow_options: Any) -> fg.Flow:
    flow = fg.Flow("desks", model=model, **flow_options)
    triage = fg.Agent("triage", "Route.", tools=[lookup])
    flow.edge(fg.START, triage)
    options = {"history": history} if history else {}
    flow.edge(triage, fg.Agent("refund", "Refund."), when="Money back.", **options)
    flow.edge(triage, fg.END)
    flow.edge("refund", fg.END)
    return flow


HANDED = [tool_call("lookup", {"order_id": "A-1"}), tool_call("transfer_to_refund"), "Refunded."]


def test_by_default_the_next_agent_sees_the_full_history(serve: Serve) -> None:
    server, model = serve(HANDED)
    result = handed(model).run("Refund A-1.")
    assert server.requests[2].messages[1:] == result.messages[:-1]


def test_without_transfer_the_next_agent_does_not_see_the_transfer(serve: Serve) -> None:
    server, model = serve(HANDED)
    result = handed(model, "without_transfer").run("Refund A-1.")

    seen = server.requests[2].messages[1:]
    assert [m["role"] for m in seen] == ["user", "assistant", "tool"]  # lookup and its answer
    assert "transfer_to_refund" not in json.dumps(seen)
    assert server.requests[2].rejection is None  # still a valid history
    assert "transfer_to_refund" in json.dumps(result.messages)  # the full record is kept


def test_summary_folds_the_earlier_conversation_into_one_message(serve: Serve) -> None:
    server, model = serve(HANDED)
    result = handed(model, handoff_history="summary").run("Refund A-1.")

    system, folded = server.requests[2].messages
    assert system == {"role": "system", "content": "Refund."}
    assert folded["role"] == "user"
    assert folded["content"].startswith("The conversation so far, handed to you by triage:\n")
    assert "user: Refund A-1." in folded["content"]
    assert 'triage called lookup({"order_id": "A-1"}) -> A-1: delivered' in folded["content"]
    assert server.requests[2].rejection is None
    assert len(result.messages) == 6  # the full record


def test_the_picture_shows_a_history_policy_on_its_edge() -> None:
    flow = handed(fg.OpenAIModel("m", base_url="http://127.0.0.1:9/v1"), "summary")
    assert "history: summary" in flow.to_dot()
    with pytest.raises(fg.FlowValidationError, match="history must be one of"):
        handed(fg.OpenAIModel("m", base_url="http://127.0.0.1:9/v1"), "everything")


def test_a_resumed_agent_still_sees_the_history_its_edge_says(serve: Serve, tmp_path: Any) -> None:
    """A pause inside the agent's visit (an approval), then a resume in a new Flow
    object: its next request still gets the summary, not the full conversation."""

    def pay(order_id: str) -> str:
        """Pay the refund."""
        return f"paid {order_id}"

    def build(model: fg.Model) -> fg.Flow:
        flow = fg.Flow("desks", model=model, handoff_history="summary")
        triage = fg.Agent("triage", "Route.", tools=[lookup])
        refund = fg.Agent("refund", "Refund.", tools=[fg.Tool(pay, requires_approval=True)])
        flow.edge(fg.START, triage)
        flow.edge(triage, refund, when="Money back.")
        flow.edge(triage, fg.END)
        flow.edge(refund, fg.END)
        return flow

    script = [*HANDED[:2], tool_call("pay", {"order_id": "A-1"}), "Paid."]
    server, model = serve(script)
    store = tmp_path / "runs.db"
    paused = build(model).run("Refund A-1.", store=store)
    assert paused.status == "waiting"
    done = build(model).resume(paused.run_id, store=store, reply="yes")

    assert done.output == "Paid."
    for request in server.requests[2:]:  # refund's requests, before and after the pause
        folded = request.messages[1]
        assert folded["content"].startswith("The conversation so far, handed to you by triage")
        assert request.rejection is None


def test_a_routers_conditions_are_filled_and_filtered_too(serve: Serve) -> None:
    server, model = serve(['{"choice": "refund"}'])
    flow = fg.Flow("routed", model=model)
    check = fg.ToolStep("check", lambda: "checked")
    flow.edge(fg.START, check)
    flow.edge(
        check, fg.ToolStep("refund", lambda: "refunded"), when=fg.ContextStr("{who} wants money")
    )
    flow.edge(check, fg.ToolStep("vip", lambda: "vip"), when="A VIP.", available=lambda ctx: False)
    flow.edge(check, fg.END)
    for name in ("refund", "vip"):
        flow.edge(name, fg.END)

    result = flow.run("Hi.", context={"who": "Ada"})

    prompt = server.requests[0].messages[0]["content"]
    assert '- "refund": Ada wants money' in prompt and "A VIP." not in prompt
    assert result.path == ["check", "refund"]


def test_a_tools_hand_off_wins_over_the_models_transfer_in_the_same_turn(serve: Serve) -> None:
    _, model = serve(
        [[tool_call("transfer_to_refund"), tool_call("send_to_shipping")], "On its way."]
    )

    def send_to_shipping() -> fg.Handoff:
        """Send the customer to shipping."""
        return fg.Handoff("shipping")

    result = desks(model, send_to_shipping).run("Where is it?")

    assert result.path == ["triage", "shipping"]
    answers = [m["content"] for m in result.messages if m["role"] == "tool"]
    assert answers == ["Error: a tool handed off to shipping instead.", "Transferred to shipping."]
