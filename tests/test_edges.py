"""How the next node is chosen: predicates, then LLM conditions, then the fallback."""

from __future__ import annotations

import json

import pytest

import flowgraph as fg
from flowgraph.testing import tool_call

from .conftest import Serve


def step(name: str, value: object = None) -> fg.ToolStep:
    return fg.ToolStep(name, lambda ctx: value if value is not None else name)


def test_predicates_are_tried_in_declared_order_and_the_first_true_wins() -> None:
    first, second, fallback = step("first"), step("second"), step("fallback")
    flow = fg.Flow("order")
    flow.edge(fg.START, step("start"))
    flow.edge("start", first, when=lambda ctx: True)
    flow.edge("start", second, when=lambda ctx: True)
    flow.edge("start", fallback)

    result = flow.run("go")

    assert result.path == ["start", "first"]
    assert result.trace[0].edge == "predicate"


def test_async_predicates_and_the_fallback() -> None:
    async def is_vip(ctx: fg.RunContext[dict[str, bool]]) -> bool:
        return ctx.context["vip"]

    flow = fg.Flow("vip")
    flow.edge(fg.START, step("start"))
    flow.edge("start", step("vip"), when=is_vip)
    flow.edge("start", step("regular"))

    assert flow.run("go", context={"vip": True}).path == ["start", "vip"]
    regular = flow.run("go", context={"vip": False})
    assert regular.path == ["start", "regular"]
    assert regular.trace[0].edge == "fallback"
    assert regular.output == "regular"


def test_a_predicate_beats_the_transfer_the_agent_called(serve: Serve) -> None:
    _, model = serve([tool_call("transfer_to_refund")])
    triage = fg.Agent("triage")
    flow = fg.Flow("support", model=model)
    flow.edge(fg.START, triage)
    flow.edge(triage, step("refund"), when="Money back.")
    flow.edge(triage, step("vip_desk"), when=lambda ctx: ctx.context.get("vip"))

    result = flow.run("refund please", context={"vip": True})

    assert result.path == ["triage", "vip_desk"]
    assert result.messages[2]["content"] == "Transferred to refund."
    assert result.messages[3] == {
        "role": "system",
        "content": (
            "The hand-off to refund did not happen: a rule of the flow sent the conversation "
            "to vip_desk instead."
        ),
    }


def test_no_edge_taken_ends_the_run_and_says_why() -> None:
    flow = fg.Flow("dead-end")
    flow.edge(fg.START, step("start"))
    flow.edge("start", step("never"), when=lambda ctx: False)

    result = flow.run("go")

    assert result.status == "completed"
    assert result.path == ["start"]
    assert result.reason == (
        "no edge out of 'start' was taken: no predicate held, no LLM condition was chosen, "
        "and it has no unconditional edge"
    )


def test_a_node_without_out_edges_ends_the_run() -> None:
    flow = fg.Flow("leaf")
    flow.edge(fg.START, step("only"))

    result = flow.run("go")

    assert (result.path, result.reason, result.output) == (
        ["only"],
        "node 'only' has no out-edges",
        "only",
    )


def router_flow(model: fg.Model) -> fg.Flow:
    flow = fg.Flow("routed", model=model)
    flow.edge(fg.START, step("check", {"amount": 120}))
    flow.edge("check", step("refund"), when="The amount is over 100.")
    flow.edge("check", step("archive"), when="The order is old.")
    flow.edge("check", step("manual"))
    return flow


def test_a_tool_step_routes_with_one_structured_output_request(serve: Serve) -> None:
    server, model = serve(['{"choice": "refund"}'])

    result = router_flow(model).run("check my order")

    assert result.path == ["check", "refund"]
    assert result.trace[0].edge == "llm"
    (request,) = server.requests
    schema = request.response_format["json_schema"]
    assert schema["strict"] is True
    assert schema["schema"]["properties"]["choice"]["enum"] == ["refund", "archive", "none"]
    assert '- "refund": The amount is over 100.' in request.messages[0]["content"]
    assert request.messages[-2] == {
        "role": "assistant",
        "name": "check",
        "content": json.dumps({"amount": 120}),
    }
    assert request.messages[-1]["role"] == "user"
    assert result.usage_by_node["check"].requests == 1


def test_the_router_choosing_none_falls_back(serve: Serve) -> None:
    _, model = serve(['{"choice": "none"}'])
    assert router_flow(model).run("check").path == ["check", "manual"]


def test_a_garbage_router_reply_is_answered_once_then_fails(serve: Serve) -> None:
    server, model = serve(["not json", '{"choice": "archive"}'])
    assert router_flow(model).run("check").path == ["check", "archive"]
    assert server.requests[1].messages[-1]["content"].startswith("That is not valid.")

    _, model = serve(["nope", '{"choice": "teleport"}'])
    with pytest.raises(
        fg.ModelError,
        match="the router of node 'check' did not pick one of "
        r"\['refund', 'archive', 'none'\]",
    ) as caught:
        router_flow(model).run("check")
    assert caught.value.result is not None
    assert caught.value.result.path == ["check"]
    assert caught.value.node == "check"


def test_a_predicate_that_raises_fails_the_run_naming_the_edge() -> None:
    def is_vip(ctx: fg.RunContext[dict[str, bool]]) -> bool:
        return ctx.context["vip"]

    flow = fg.Flow("broken")
    flow.edge(fg.START, step("start"))
    flow.edge("start", step("vip"), when=is_vip)

    with pytest.raises(
        fg.RunError, match="the predicate 'is_vip' of edge 'start' -> 'vip' raised KeyError: 'vip'"
    ) as caught:
        flow.run("go")
    assert caught.value.result is not None
    assert caught.value.result.status == "failed"
    assert caught.value.result.path == ["start"]


def test_max_steps_stops_a_loop() -> None:
    ping, pong = step("ping"), step("pong")
    flow = fg.Flow("loop", max_steps=5)
    flow.edge(fg.START, ping)
    flow.edge(ping, pong)
    flow.edge(pong, ping)

    with pytest.raises(
        fg.MaxStepsExceeded,
        match=r"more than max_steps=5 node visits \(last: "
        "ping -> pong -> ping -> pong -> ping\\)",
    ) as caught:
        flow.run("go")
    assert caught.value.result is not None
    assert len(caught.value.result.path) == 5
    with pytest.raises(fg.MaxStepsExceeded) as caught:
        flow.run("go", max_steps=8)
    assert caught.value.result is not None
    assert len(caught.value.result.path) == 8


def test_a_start_edge_can_be_a_predicate() -> None:
    flow = fg.Flow("start-choice")
    flow.edge(fg.START, step("a"), when=lambda ctx: ctx.context.get("a"))
    flow.edge(fg.START, step("b"))

    assert flow.run("go", context={"a": True}).path == ["a"]
    assert flow.run("go").path == ["b"]
