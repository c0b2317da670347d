"""The agent's tool loop, through the real openai client and the scripted server."""

from __future__ import annotations

import asyncio
import json
import threading

import flowgraph as fg
from flowgraph.testing import Reply, tool_call

from .conftest import Serve, roles


def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order by its id.

    Args:
        order_id: the order's id, like A-1.
    """
    if order_id == "missing":
        raise LookupError("no such order")
    return {"id": order_id, "status": "shipped"}


def single_agent_flow(model: fg.Model, agent: fg.Agent) -> fg.Flow:
    flow = fg.Flow("single", model=model)
    flow.edge(fg.START, agent)
    flow.edge(agent, fg.END)
    return flow


def test_tool_results_come_back_before_the_next_request(serve: Serve) -> None:
    server, model = serve([tool_call("lookup_order", {"order_id": "A-1"}), "A-1 has shipped."])
    agent = fg.Agent("triage", "Help the customer.", tools=[lookup_order])

    result = single_agent_flow(model, agent).run("Where is A-1?")

    assert result.status == "completed"
    assert result.output == "A-1 has shipped."
    assert result.path == ["triage"]
    assert roles(result.messages) == ["user", "assistant", "tool", "assistant"]
    assert json.loads(result.messages[2]["content"]) == {"id": "A-1", "status": "shipped"}
    first, second = server.requests
    assert first.messages[0] == {"role": "system", "content": "Help the customer."}
    assert first.tool_names == ["lookup_order"]
    schema = first.tools[0]["function"]
    assert schema["description"] == "Look up an order by its id."
    assert schema["parameters"]["properties"]["order_id"] == {
        "type": "string",
        "description": "the order's id, like A-1.",
    }
    assert second.messages[1:] == result.messages[:3]
    assert result.usage.requests == 2
    assert result.usage_by_node["triage"].requests == 2


def test_parallel_async_tool_calls_run_concurrently(serve: Serve) -> None:
    started: list[str] = []
    both = asyncio.Event()

    async def fetch(key: str) -> str:
        """Fetch a value."""
        started.append(key)
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), timeout=5)  # fails if the calls ran one by one
        return f"value of {key}"

    _, model = serve([[tool_call("fetch", {"key": "a"}), tool_call("fetch", {"key": "b"})], "done"])
    result = single_agent_flow(model, fg.Agent("agent", tools=[fetch])).run("go")

    tool_messages = [m for m in result.messages if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == ["value of a", "value of b"]
    calls = result.messages[1]["tool_calls"]
    assert [m["tool_call_id"] for m in tool_messages] == [call["id"] for call in calls]


def test_parallel_sync_tool_calls_run_in_worker_threads(serve: Serve) -> None:
    barrier = threading.Barrier(2, timeout=5)

    def wait_for_peer(key: str) -> str:
        """Wait until the other call runs too."""
        barrier.wait()  # a BrokenBarrierError if the calls were not concurrent
        return key

    _, model = serve(
        [
            [tool_call("wait_for_peer", {"key": "a"}), tool_call("wait_for_peer", {"key": "b"})],
            "done",
        ]
    )
    result = single_agent_flow(model, fg.Agent("agent", tools=[wait_for_peer])).run("go")

    assert [m["content"] for m in result.messages if m["role"] == "tool"] == ["a", "b"]


def test_bad_arguments_go_back_to_the_model_which_corrects_itself(serve: Serve) -> None:
    server, model = serve(
        [
            tool_call("lookup_order", "{not json"),
            tool_call("lookup_order", {"order": 1}),
            tool_call("lookup_order", {"order_id": "A-1"}),
            "A-1 has shipped.",
        ]
    )
    result = single_agent_flow(model, fg.Agent("triage", tools=[lookup_order])).run("A-1?")

    answers = [m["content"] for m in result.messages if m["role"] == "tool"]
    assert answers[0].startswith("Error: invalid arguments for tool 'lookup_order': ")
    assert "Invalid JSON" in answers[0]
    assert "order_id: Field required" in answers[1]
    assert "order: Extra inputs are not permitted" in answers[1]
    assert json.loads(answers[2])["status"] == "shipped"
    assert result.output == "A-1 has shipped."
    assert len(server.requests) == 4


def test_tool_exceptions_and_unknown_tools_are_answered(serve: Serve) -> None:
    _, model = serve(
        [
            [tool_call("lookup_order", {"order_id": "missing"}), tool_call("delete_everything")],
            "Sorry, I cannot find it.",
        ]
    )
    result = single_agent_flow(model, fg.Agent("triage", tools=[lookup_order])).run("?")

    answers = [m["content"] for m in result.messages if m["role"] == "tool"]
    assert answers == [
        "Error: tool 'lookup_order' raised LookupError: no such order",
        "Error: there is no tool 'delete_everything'. Your tools: lookup_order; hand-offs: none.",
    ]
    assert result.status == "completed"


def test_an_empty_reply_is_answered_and_the_loop_goes_on(serve: Serve) -> None:
    server, model = serve([Reply(), "Hello!"])
    result = single_agent_flow(model, fg.Agent("agent")).run("hi")

    assert result.output == "Hello!"
    nudge = server.requests[1].messages[-1]
    assert nudge["role"] == "system"
    assert nudge["content"] == "Your last reply was empty. Answer the conversation."


def test_max_turns_bounds_the_loop_and_keeps_the_history_valid(serve: Serve) -> None:
    server, model = serve(lambda request: tool_call("lookup_order", {"order_id": "A-1"}))
    agent = fg.Agent("triage", tools=[lookup_order], max_turns=3)

    result = single_agent_flow(model, agent).run("loop forever")

    assert len(server.requests) == 3
    assert result.notes == [
        "agent 'triage' reached max_turns=3 without a final answer; the run went on from its "
        "last turn (raise max_turns, or look at the tool calls it kept making)"
    ]
    assert result.output is None
    assert roles(result.messages) == ["user"] + ["assistant", "tool"] * 3


def test_dynamic_instructions_read_the_context(serve: Serve) -> None:
    server, model = serve(["Welcome back."])
    agent = fg.Agent("desk", instructions=lambda ctx: f"VIP={ctx.context['vip']}")

    single_agent_flow(model, agent).run("hi", context={"vip": True})

    assert server.requests[0].messages[0] == {"role": "system", "content": "VIP=True"}


def test_tools_get_the_run_context_and_change_it(serve: Serve) -> None:
    def issue_refund(order_id: str, ctx: fg.RunContext[dict[str, object]]) -> str:
        """Refund an order."""
        ctx.context["refunded"] = order_id
        return "refunded"

    server, model = serve([tool_call("issue_refund", {"order_id": "A-1"}), "Done."])
    result = single_agent_flow(model, fg.Agent("refund", tools=[issue_refund])).run("refund")

    assert result.context == {"refunded": "A-1"}
    parameters = server.requests[0].tools[0]["function"]["parameters"]
    assert list(parameters["properties"]) == ["order_id"]


def test_a_transfer_tool_hands_off_without_an_extra_request(serve: Serve) -> None:
    server, model = serve([tool_call("transfer_to_refund"), "Your refund is on its way."])
    triage = fg.Agent("triage", "Route the customer.")
    refund = fg.Agent("refund", "Refund desk.")
    flow = fg.Flow("support", model=model)
    flow.edge(fg.START, triage)
    flow.edge(triage, refund, when="The customer wants money back.")
    flow.edge(triage, fg.END)
    flow.edge(refund, fg.END)

    result = flow.run("I want my money back")

    assert result.path == ["triage", "refund"]
    assert result.output == "Your refund is on its way."
    assert result.messages[2]["content"] == "Transferred to refund."
    offered = server.requests[0].tools[0]["function"]
    assert offered["name"] == "transfer_to_refund"
    assert "The customer wants money back." in offered["description"]
    assert server.requests[1].messages[0]["content"] == "Refund desk."
    assert "tools" not in server.requests[1].body
    assert len(server.requests) == 2
    assert result.trace[0].edge == "llm"


def test_a_transfer_to_an_undeclared_target_is_answered_as_an_error(serve: Serve) -> None:
    _, model = serve([tool_call("transfer_to_billing"), tool_call("transfer_to_refund"), "ok"])
    triage, refund, billing = fg.Agent("triage"), fg.Agent("refund"), fg.Agent("billing")
    flow = fg.Flow("support", model=model)
    flow.edge(fg.START, triage)
    flow.edge(triage, refund, when="Refunds.")
    flow.edge(fg.START, billing, when=lambda ctx: False)
    flow.edge(refund, fg.END)

    result = flow.run("bill me")

    assert result.messages[2]["content"] == (
        "Error: no hand-off from triage to 'billing' is declared. The hand-offs you can "
        "use: transfer_to_refund."
    )
    assert result.path == ["triage", "refund"]


def test_only_the_first_transfer_of_a_completion_is_taken(serve: Serve) -> None:
    _, model = serve(
        [
            [
                tool_call("lookup_order", {"order_id": "A-1"}),
                tool_call("transfer_to_refund"),
                tool_call("transfer_to_billing"),
            ],
            "refund desk here",
        ]
    )
    triage = fg.Agent("triage", tools=[lookup_order])
    flow = fg.Flow("support", model=model)
    flow.edge(fg.START, triage)
    flow.edge(triage, fg.Agent("refund"), when="Refunds.")
    flow.edge(triage, fg.Agent("billing"), when="Bills.")

    result = flow.run("refund A-1")

    answers = [m["content"] for m in result.messages if m["role"] == "tool"]
    assert json.loads(answers[0])["id"] == "A-1"
    assert answers[1] == "Transferred to refund."
    assert answers[2] == "Error: already handing off to refund; one hand-off per turn."
    assert result.path == ["triage", "refund"]


def test_model_settings_are_sent_with_every_request(serve: Serve) -> None:
    server, _ = serve(["hi"])
    model = fg.OpenAIModel("my-model", base_url=server.url, api_key="k", temperature=0, seed=7)
    single_agent_flow(model, fg.Agent("a")).run("hi")

    body = server.requests[0].body
    assert (body["model"], body["temperature"], body["seed"]) == ("my-model", 0, 7)


def test_an_llm_condition_can_lead_to_end(serve: Serve) -> None:
    server, model = serve([tool_call("transfer_to_END")])
    agent = fg.Agent("desk")
    flow = fg.Flow("bye", model=model)
    flow.edge(fg.START, agent)
    flow.edge(agent, fg.END, when="The customer said goodbye.")
    flow.edge(agent, fg.ToolStep("survey", lambda: "survey sent"))

    result = flow.run("bye!")

    assert (result.path, result.reason) == (["desk"], "reached END")
    assert server.requests[0].tools[0]["function"]["description"] == (
        "End the conversation. Use when: The customer said goodbye."
    )


def test_the_empty_reply_nudge_names_what_the_agent_can_do(serve: Serve) -> None:
    server, model = serve([Reply(), "ok"])
    agent = fg.Agent("agent", tools=[lookup_order])
    flow = fg.Flow("f", model=model)
    flow.edge(fg.START, agent)
    flow.edge(agent, fg.Agent("other"), when="Never.")

    flow.run("hi")

    assert server.requests[1].messages[-1]["content"] == (
        "Your last reply was empty. Answer the conversation, call one of your tools or hand "
        "off with a transfer tool."
    )
