"""A Flow as a node: its own graph, the same run context, END returns to the parent."""

from __future__ import annotations

import pytest

import flowgraph as fg

from .conftest import Serve


def verification_flow(model: fg.Model | None = None) -> fg.Flow:
    flow = fg.Flow("verification", model=model)
    check = fg.ToolStep("check_id", lambda ctx: ctx.context.update(verified=True) or "id ok")
    flow.edge(fg.START, check)
    flow.edge(check, fg.ToolStep("log", lambda: "logged"))
    flow.edge("log", fg.END)
    return flow


def test_a_sub_flow_runs_its_graph_on_the_same_context_and_returns() -> None:
    parent = fg.Flow("parent")
    parent.edge(fg.START, fg.ToolStep("greet", lambda: "hello"))
    parent.edge("greet", verification_flow())
    parent.edge(
        "verification",
        fg.ToolStep("refund", lambda ctx: "refund" if ctx.context["verified"] else "refuse"),
    )
    parent.edge("refund", fg.END)

    result = parent.run("go")

    assert result.path == ["greet", "verification", "refund"]
    assert result.context == {"verified": True}
    assert [m["content"] for m in result.messages] == ["go", "hello", "id ok", "logged", "refund"]
    inner = result.trace[1]
    assert inner.node == "verification"
    assert [step.node for step in inner.inner] == ["check_id", "log"]
    assert result.output == "refund"


def test_a_sub_flow_agent_counts_usage_in_the_parent(serve: Serve) -> None:
    _, model = serve(["verified by the agent", "done"])
    inner = fg.Flow("inner", model=model)
    inner.edge(fg.START, fg.Agent("verifier", "Verify."))
    outer = fg.Flow("outer", model=model)
    outer.edge(fg.START, inner)
    outer.edge(inner, fg.Agent("closer", "Close."))

    result = outer.run("go")

    assert result.path == ["inner", "closer"]
    assert result.usage.requests == 2
    assert result.usage_by_node["inner"].requests == 1
    assert result.usage_by_node["closer"].requests == 1
    assert result.trace[0].inner[0].node == "verifier"


def test_a_sub_flow_can_be_the_target_of_a_hand_off(serve: Serve) -> None:
    from flowgraph.testing import tool_call

    server, model = serve([tool_call("transfer_to_verification"), "welcome back"])
    triage = fg.Agent("triage", "Route.")
    flow = fg.Flow("support", model=model)
    flow.edge(fg.START, triage)
    flow.edge(triage, verification_flow(), when="The customer must prove who they are.")
    flow.edge("verification", fg.Agent("desk", "Help."))

    result = flow.run("hi")

    assert result.path == ["triage", "verification", "desk"]
    assert server.requests[0].tool_names == ["transfer_to_verification"]


def test_a_broken_sub_flow_fails_the_parents_validation() -> None:
    broken = fg.Flow("broken_sub")
    broken.edge(fg.START, fg.ToolStep("a", lambda: 1))
    broken.edge("a", "nowhere")
    parent = fg.Flow("parent")
    parent.edge(fg.START, broken)

    with pytest.raises(
        fg.FlowValidationError,
        match="sub-flow 'broken_sub': edge 'a' -> 'nowhere': there is no node 'nowhere'",
    ):
        parent.validate()


def test_a_flow_cannot_contain_itself() -> None:
    loop = fg.Flow("loop")
    loop.edge(fg.START, fg.ToolStep("a", lambda: 1))
    loop.edge("a", loop)

    with pytest.raises(fg.FlowValidationError, match="sub-flow 'loop' contains itself"):
        loop.validate()


def test_a_failing_sub_flow_names_itself_and_keeps_both_states() -> None:
    def explode() -> str:
        raise ValueError("bad id")

    inner = fg.Flow("inner")
    inner.edge(fg.START, fg.ToolStep("explode", explode))
    outer = fg.Flow("outer")
    outer.edge(fg.START, inner)

    with pytest.raises(
        fg.RunError, match="flow 'inner' raised RunError: tool 'explode' raised ValueError: bad id"
    ) as caught:
        outer.run("go")
    assert caught.value.result is not None
    assert caught.value.result.path == ["inner"]
    assert isinstance(caught.value.__cause__, fg.RunError)


def test_a_sub_flow_without_a_model_uses_its_parents(serve: Serve) -> None:
    server, model = serve(["from the parent's model"])
    inner = fg.Flow("inner")  # no model of its own
    inner.edge(fg.START, fg.Agent("helper", "Help."))
    outer = fg.Flow("outer", model=model)
    outer.edge(fg.START, inner)

    result = outer.run("go")

    assert result.output == "from the parent's model"
    assert len(server.requests) == 1
