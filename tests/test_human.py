"""Human in the loop: Human nodes, ctx.interrupt, tools that need approval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import flowgraph as fg
from flowgraph.testing import tool_call

from .conftest import Serve, roles
from .durable_app import approval_flow


def test_a_human_node_pauses_and_the_reply_decides(tmp_path: Path) -> None:
    flow = approval_flow()
    store = tmp_path / "runs.db"

    paused = flow.run("Refund please", context={"order": "A-1"}, store=store)

    assert paused.status == "waiting"
    assert paused.waiting is not None
    assert (paused.waiting.node, paused.waiting.prompt) == ("approve", "Refund A-1?")
    assert paused.waiting.kind == "human"
    assert paused.messages[-1] == {"role": "assistant", "name": "approve", "content": "Refund A-1?"}
    assert "waiting at 'approve' for a reply to: Refund A-1?" in paused.reason
    assert flow.runs(store)[0].status == "waiting"

    result = flow.resume(paused.run_id, store=store, reply="yes")

    assert result.status == "completed"
    assert result.path == ["approve", "pay"]
    assert result.output == "paid A-1"
    assert roles(result.messages) == ["user", "assistant", "user", "assistant"]
    assert result.messages[2] == {"role": "user", "content": "yes"}
    assert result.waiting is None


def test_a_run_without_a_store_waits_in_this_process() -> None:
    flow = approval_flow()
    paused = flow.run("Refund please", context={"order": "B-2"})

    result = flow.resume(paused.run_id, reply="no")

    assert (result.status, result.path, result.output) == ("completed", ["approve"], "no")
    with pytest.raises(fg.UsageError, match=r"there is no run .* \(a run given no store is kept"):
        flow.resume(paused.run_id, reply="again")


def test_resume_needs_a_reply_and_only_then(tmp_path: Path) -> None:
    flow = approval_flow()
    store = tmp_path / "runs.db"
    paused = flow.run("Refund please", context={"order": "A-1"}, store=store)

    with pytest.raises(fg.UsageError, match=r"waits at 'approve' for a reply to 'Refund A-1\?'"):
        flow.resume(paused.run_id, store=store)
    done = flow.resume(paused.run_id, store=store, reply="yes")
    with pytest.raises(fg.UsageError, match="has completed"):
        flow.resume(done.run_id, store=store, reply="yes")


def refund_tool_flow(model: fg.Model, tool: fg.Tool) -> fg.Flow:
    agent = fg.Agent("refund", "Refund desk.", tools=[tool])
    flow = fg.Flow("refunds", model=model)
    flow.edge(fg.START, agent)
    flow.edge(agent, fg.END)
    return flow


def test_a_tool_that_needs_approval_runs_once_approved(serve: Serve, tmp_path: Path) -> None:
    calls: list[str] = []

    def issue_refund(order_id: str) -> str:
        """Refund an order."""
        calls.append(order_id)
        return f"refunded {order_id}"

    server, model = serve([tool_call("issue_refund", {"order_id": "A-1"}), "Done."])
    flow = refund_tool_flow(model, fg.Tool(issue_refund, requires_approval=True))
    store = tmp_path / "runs.db"

    paused = flow.run("Refund A-1", store=store)

    assert paused.status == "waiting"
    assert paused.waiting is not None
    assert paused.waiting.kind == "approval"
    assert paused.waiting.prompt == 'Approve the call issue_refund({"order_id": "A-1"})?'
    assert calls == []
    result = flow.resume(paused.run_id, store=store, reply="Yes")
    assert calls == ["A-1"]
    assert result.messages[2]["content"] == "refunded A-1"
    assert result.output == "Done."
    assert len(server.requests) == 2  # the approved call was not requested again


def test_a_declined_call_is_answered_as_not_approved(serve: Serve) -> None:
    calls: list[str] = []

    def issue_refund(order_id: str) -> str:
        """Refund an order."""
        calls.append(order_id)
        return "refunded"

    server, model = serve([tool_call("issue_refund", {"order_id": "A-1"}), "I could not."])
    flow = refund_tool_flow(model, fg.Tool(issue_refund, requires_approval=True))

    paused = flow.run("Refund A-1")
    result = flow.resume(paused.run_id, reply=False)

    assert calls == []
    assert result.messages[2]["content"] == (
        "Error: a human did not approve this call of issue_refund (False)."
    )
    assert server.requests[1].messages[-1]["role"] == "tool"


def test_arguments_are_validated_before_anyone_is_asked(serve: Serve) -> None:
    def issue_refund(order_id: str) -> str:
        """Refund an order."""
        return "refunded"

    _, model = serve([tool_call("issue_refund", {"order": 1}), "Sorry."])
    flow = refund_tool_flow(model, fg.Tool(issue_refund, requires_approval=True))

    result = flow.run("Refund A-1")

    assert result.status == "completed"
    assert "invalid arguments for tool 'issue_refund'" in result.messages[2]["content"]


def test_a_tool_may_interrupt_and_gets_the_reply(serve: Serve, tmp_path: Path) -> None:
    seen: list[Any] = []

    def ship(address: str, ctx: fg.RunContext) -> str:
        """Ship the parcel."""
        floor = ctx.interrupt(f"Which floor at {address}?")
        seen.append((floor, ctx.idempotency_key))
        return f"shipped to {address}, floor {floor}"

    server, model = serve([tool_call("ship", {"address": "1 Main St"}), "Shipped."])
    flow = refund_tool_flow(model, fg.Tool(ship))
    store = tmp_path / "runs.db"

    paused = flow.run("Ship it", run_id="ship-1", store=store)
    assert paused.waiting is not None
    assert (paused.waiting.kind, paused.waiting.prompt) == (
        "interrupt",
        "Which floor at 1 Main St?",
    )
    result = flow.resume("ship-1", store=store, reply="3")

    assert seen == [("3", "ship-1:1:call_1")]
    assert result.messages[2]["content"] == "shipped to 1 Main St, floor 3"
    assert len(server.requests) == 2


def test_a_tool_step_may_interrupt(tmp_path: Path) -> None:
    def confirm(ctx: fg.RunContext) -> str:
        return f"confirmed: {ctx.interrupt('Sure?')}"

    flow = fg.Flow("confirm")
    flow.edge(fg.START, fg.ToolStep("confirm", confirm))
    flow.edge("confirm", fg.END)
    store = tmp_path / "runs.db"

    paused = flow.run("go", store=store)
    result = flow.resume(paused.run_id, store=store, reply="sure")

    assert result.output == "confirmed: sure"
    assert result.path == ["confirm"]


def test_a_sub_flow_pauses_and_resumes_inside_without_starting_over(tmp_path: Path) -> None:
    visits: list[str] = []

    def prepare(ctx: fg.RunContext) -> str:
        visits.append("prepare")
        return "prepared"

    inner = fg.Flow("check")
    inner.edge(fg.START, fg.ToolStep("prepare", prepare))
    inner.edge("prepare", fg.Human("ok", prompt="OK?"))
    inner.edge("ok", fg.END)
    outer = fg.Flow("outer")
    outer.edge(fg.START, inner)
    outer.edge(inner, fg.ToolStep("finish", lambda ctx: f"finished after {ctx.last_text()}"))
    outer.edge("finish", fg.END)
    store = tmp_path / "runs.db"

    paused = outer.run("go", store=store)
    assert paused.waiting is not None
    assert paused.waiting.node == "ok"
    result = outer.resume(paused.run_id, store=store, reply="fine")

    assert visits == ["prepare"]
    assert result.output == "finished after fine"
    assert result.path == ["check", "finish"]


def test_a_tool_in_a_nested_chat_cannot_pause(serve: Serve) -> None:
    def ask(ctx: fg.RunContext) -> str:
        """Ask someone."""
        return str(ctx.interrupt("Anyone?"))

    _, model = serve([tool_call("ask"), "asked"])
    helper = fg.Agent("helper", tools=[ask])
    nested = fg.NestedChat("panel", chats=[fg.Chat(helper, "Ask around.")])
    flow = fg.Flow("nested", model=model)
    flow.edge(fg.START, nested)
    flow.edge(nested, fg.END)

    result = flow.run("go")

    answer = result.chats[0].messages[2]["content"]
    assert "a tool in the nested chats of 'panel' asked a human ('Anyone?')" in answer


def test_a_human_node_is_drawn_with_its_question() -> None:
    flow = approval_flow()
    flow.nodes["approve"].prompt = "Approve the <refund>?"  # type: ignore[attr-defined]

    dot = flow.to_dot()

    assert "shape=house" in dot
    assert "asks: Approve the &lt;refund&gt;?" in dot
    assert 'n_approve[\\"approve"\\]' in flow.to_mermaid()


def test_a_sub_flow_resumed_inside_keeps_the_steps_and_chats_it_made_before(
    serve: Serve, tmp_path: Path
) -> None:
    _, model = serve(["Looks fine to me."])
    critic = fg.Agent("critic", "You are a critic.")
    review = fg.NestedChat("review", [fg.Chat(critic, "Review the plan.", max_turns=1)])
    inner = fg.Flow("check", model=model)
    inner.edge(fg.START, review)
    inner.edge(review, fg.Human("ok", prompt="OK?"))
    inner.edge("ok", fg.END)
    outer = fg.Flow("outer", model=model)
    outer.edge(fg.START, inner)
    outer.edge(inner, fg.END)
    store = tmp_path / "runs.db"

    paused = outer.run("go", store=store)
    assert paused.waiting is not None
    result = outer.resume(paused.run_id, store=store, reply="fine")

    [step] = result.trace
    assert [record.node for record in step.inner] == ["review", "ok"]
    assert [(chat.node, chat.recipient) for chat in result.chats] == [("review", "critic")]
    assert result.chats[0].summary == "Looks fine to me."
    assert result.usage.requests == 1


def test_a_sub_flow_that_fails_after_a_resume_resumes_again_with_each_step_once(
    tmp_path: Path,
) -> None:
    broken = [True]

    def settle(ctx: fg.RunContext) -> str:
        if broken[0]:
            raise RuntimeError("the ledger is down")
        return "settled"

    inner = fg.Flow("check")
    inner.edge(fg.START, fg.ToolStep("prepare", lambda ctx: "prepared"))
    inner.edge("prepare", fg.Human("ok", prompt="OK?"))
    inner.edge("ok", fg.ToolStep("settle", settle))
    inner.edge("settle", fg.END)
    outer = fg.Flow("outer")
    outer.edge(fg.START, inner)
    outer.edge(inner, fg.END)
    store = tmp_path / "runs.db"

    paused = outer.run("go", store=store)
    with pytest.raises(fg.RunError, match="the ledger is down"):
        outer.resume(paused.run_id, store=store, reply="fine")
    broken[0] = False
    result = outer.resume(paused.run_id, store=store)

    [step] = result.trace
    assert [record.node for record in step.inner] == ["prepare", "ok", "settle"]
    assert result.output == "settled"
