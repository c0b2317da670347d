"""Issue 18: a run as a stream of typed events, through sub-flows and nested chats."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import flowgraph as fg
import flowgraph.events as events
from flowgraph.testing import ScriptedServer, tool_call

from .conftest import Serve

SCRIPT = [
    tool_call("lookup", {"order_id": "A-1"}),  # triage
    tool_call("transfer_to_review"),  # triage hands off to the nested chat
    "Summary: A-1 is delivered.",  # the nested chat's critic
    "Refunded A-1.",  # refund
]


def lookup(order_id: str) -> str:
    """Look an order up."""
    return "delivered"


def policy(hook: fg.HookContext) -> None:
    if hook.point == "node_exit" and hook.node == "triage":
        hook.inject({"role": "system", "content": "Refunds within 30 days."})


def support(model: fg.Model) -> fg.Flow:
    """An agent with a tool, a hand-off, a hook injection, a nested chat, a sub-flow."""
    checks = fg.Flow("checks")
    checks.edge(fg.START, fg.ToolStep("audit", lambda: "audited"))
    checks.edge("audit", fg.END)
    review = fg.NestedChat("review", [fg.Chat(fg.Agent("critic"), "Sum it up.")])
    flow = fg.Flow("support", model=model)
    triage = fg.Agent("triage", "Route.", tools=[lookup])
    flow.edge(fg.START, triage)
    flow.edge(triage, review, when="Money back.")
    flow.edge(triage, fg.END)
    flow.edge(review, fg.Agent("refund", "Refund."))
    flow.edge("refund", checks)
    flow.edge(checks, fg.END)
    flow.after_completion(policy)
    return flow


def said(event: Any) -> tuple[Any, ...]:
    """An event without its timings and ids: what the order test compares."""
    data = event.model_dump(exclude={"run_id", "seconds", "usage", "result"})
    return (data.pop("type"), data.pop("step"), "/".join(data.pop("path")), *data.values())


def test_the_events_of_a_run_in_order(serve: Serve) -> None:
    _, model = serve(SCRIPT)

    streamed = list(support(model).stream("Refund A-1"))

    assert [said(event) for event in streamed] == [
        ("run_started", 0, "", "support", False),
        ("handoff", 0, "", "START", "triage", "fallback", ""),
        ("node_entered", 1, "triage", "agent"),
        ("tool_call_delta", 1, "triage", 0, "call_1", "lookup", '{"order_id": "A-1"}'),
        ("tool_started", 1, "triage", "call_1", "lookup", '{"order_id": "A-1"}'),
        ("tool_finished", 1, "triage", "call_1", "lookup", "delivered", False),
        ("tool_call_delta", 1, "triage", 0, "call_2", "transfer_to_review", "{}"),
        (
            "injected",
            1,
            "triage",
            "policy",
            [{"role": "system", "content": "Refunds within 30 days."}],
        ),
        ("node_exited", 1, "triage", "agent", None),
        ("handoff", 1, "triage", "triage", "review", "llm", "Money back."),
        ("node_entered", 2, "review", "nested"),
        ("text_delta", 2, "review/critic", "Summary: A-1 is delivered."),
        ("node_exited", 2, "review", "nested", "Summary: A-1 is delivered."),
        ("handoff", 2, "review", "review", "refund", "fallback", ""),
        ("node_entered", 3, "refund", "agent"),
        ("text_delta", 3, "refund", "Refunded A-1."),
        ("node_exited", 3, "refund", "agent", "Refunded A-1."),
        ("handoff", 3, "refund", "refund", "checks", "fallback", ""),
        ("node_entered", 4, "checks", "flow"),
        ("handoff", 0, "checks", "START", "audit", "fallback", ""),
        ("node_entered", 1, "checks/audit", "tool"),
        ("node_exited", 1, "checks/audit", "tool", "audited"),
        ("handoff", 1, "checks/audit", "audit", "END", "fallback", ""),
        ("node_exited", 4, "checks", "flow", "audited"),
        ("handoff", 4, "checks", "checks", "END", "fallback", ""),
        ("run_finished", 4, ""),
    ]
    finished = streamed[-1]
    assert isinstance(finished, events.RunFinished)
    assert finished.result.path == ["triage", "review", "refund", "checks"]


def test_a_streamed_run_and_a_plain_one_give_the_same_result(serve: Serve) -> None:
    server, model = serve(SCRIPT)
    again, other = serve(SCRIPT)  # a server of its own: the same tool-call ids

    plain = support(model).run("Refund A-1")
    streamed = list(support(other).stream("Refund A-1"))[-1].result  # type: ignore[union-attr]

    assert streamed.messages == plain.messages
    assert (streamed.path, streamed.output, streamed.status) == (
        plain.path,
        plain.output,
        plain.status,
    )
    assert streamed.usage == plain.usage and streamed.chats == plain.chats
    assert [r.body for r in again.requests] == [r.body for r in server.requests]


def test_the_text_deltas_make_the_answers(serve: Serve) -> None:
    _, model = serve(SCRIPT)
    streamed = list(support(model).stream("Refund A-1"))
    result = streamed[-1].result  # type: ignore[union-attr]

    texts: dict[str, str] = {}
    for event in streamed:
        if event.type == "text_delta":
            texts[event.path[-1]] = texts.get(event.path[-1], "") + event.delta
    answers = {m["name"]: m["content"] for m in result.messages if m.get("content") and "name" in m}
    assert texts == {"refund": answers["refund"], "critic": result.chats[0].summary}


def test_every_event_is_json_and_parses_back(serve: Serve) -> None:
    _, model = serve(SCRIPT)
    for event in support(model).stream("Refund A-1"):
        line = event.model_dump_json()
        assert "\n" not in line
        back = events.EVENTS.validate_json(line)
        assert type(back) is type(event) and back.type == event.type
        assert back.model_dump(exclude={"result"}) == event.model_dump(exclude={"result"})


def test_astream_in_async_code(serve: Serve) -> None:
    _, model = serve(SCRIPT)

    async def collect() -> list[str]:
        return [event.type async for event in support(model).astream("Refund A-1")]

    types = asyncio.run(collect())
    assert types[0] == "run_started" and types[-1] == "run_finished"


def test_a_failed_run_ends_with_run_finished_then_raises() -> None:
    def post() -> str:
        raise ValueError("the ledger is locked")

    flow = fg.Flow("books")
    flow.edge(fg.START, fg.ToolStep("post", post))
    flow.edge("post", fg.END)
    seen: list[Any] = []
    with pytest.raises(fg.RunError, match="the ledger is locked"):
        seen.extend(flow.stream("go"))
    assert [event.type for event in seen] == [
        "run_started",
        "handoff",
        "node_entered",
        "run_finished",
    ]
    assert seen[-1].result.status == "failed"


def test_a_run_waiting_for_a_human_says_what_it_waits_for(tmp_path: Path) -> None:
    flow = fg.Flow("approvals")
    flow.edge(fg.START, fg.Human("approve", prompt="Refund A-1?"))
    flow.edge("approve", fg.END)

    *_, waiting, finished = flow.stream("go", store=tmp_path / "runs.db")

    assert isinstance(waiting, events.WaitingForReply)
    assert (waiting.prompt, waiting.path, waiting.kind) == ("Refund A-1?", ["approve"], "human")
    assert finished.result.status == "waiting"  # type: ignore[union-attr]


def test_a_consumer_that_stops_early_cancels_the_run_and_keeps_its_commits(
    tmp_path: Path,
) -> None:
    store = tmp_path / "runs.db"
    finished: list[str] = []

    async def slow(ctx: fg.RunContext) -> str:
        if ctx.node == "second" and not finished:
            await asyncio.sleep(30)  # the first time: the consumer stops meanwhile
        finished.append(ctx.node)
        return ctx.node

    flow = fg.Flow("slow")
    flow.edge(fg.START, fg.ToolStep("first", lambda: "first"))
    flow.edge("first", fg.ToolStep("second", slow))
    flow.edge("second", fg.END)

    async def main() -> tuple[str, int]:
        async for event in flow.astream("go", store=store):
            if event.type == "node_exited":
                break  # after "first"
        await asyncio.sleep(0.05)
        return event.run_id, len(asyncio.all_tasks())

    run_id, tasks = asyncio.run(main())

    assert tasks == 1  # main itself: the run's task is gone
    assert finished == []  # "second" was cancelled where it waited
    (info,) = flow.runs(store)
    assert (info.run_id, info.status, info.path[0]) == (run_id, "running", "first")
    finished.append("(resumed)")
    resumed = flow.resume(run_id, store=store)
    assert (resumed.status, resumed.path) == ("completed", ["first", "second"])


def test_a_slow_consumer_holds_the_run_back() -> None:
    """A run ahead of its consumer waits at its next event: nothing piles up."""
    from flowgraph._engine.stream import BUFFER

    made: list[int] = []
    flow = fg.Flow("chain", max_steps=1000)
    flow.edge(fg.START, fg.ToolStep("step", lambda ctx: made.append(ctx.step)))
    flow.edge("step", "step", when=lambda ctx: ctx.step < 400)
    flow.edge("step", fg.END)

    async def main() -> tuple[int, int]:
        stream = flow.astream("go")
        await stream.__anext__()
        await asyncio.sleep(0.3)  # the consumer dawdles
        while_dawdling = len(made)
        rest = [event async for event in stream]
        return while_dawdling, len(rest)

    while_dawdling, rest = asyncio.run(main())
    # Three events a step (entered, exited, handoff): the run stopped a buffer ahead.
    assert while_dawdling <= BUFFER // 3 + 2
    assert len(made) == 400 and rest == 1 + 3 * 400 + 1  # START's hand-off, run_finished


def test_requests_sent_while_streaming_are_valid_for_a_strict_server() -> None:
    with ScriptedServer(SCRIPT) as server:
        list(support(server.model()).stream("Refund A-1"))
    assert [request.rejection for request in server.requests] == [None] * 4
