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


def merged(streamed: list[Any]) -> list[Any]:
    """The events with each run of pieces of one text or one tool call joined: the
    order test compares what was said, not how the server cut it."""
    joined: list[Any] = []
    for event in streamed:
        last = joined[-1] if joined else None
        same = (
            last is not None
            and event.type == last.type
            and event.path == last.path
            and event.type in ("text_delta", "tool_call_delta")
            and getattr(event, "index", None) == getattr(last, "index", None)
        )
        if same:
            joined[-1] = last.model_copy(
                update={
                    "delta": last.delta + event.delta,
                    **(
                        {"call_id": last.call_id or event.call_id}
                        if event.type != "text_delta"
                        else {}
                    ),
                    **({"name": last.name or event.name} if event.type != "text_delta" else {}),
                }
            )
        else:
            joined.append(event)
    return joined


def said(event: Any) -> tuple[Any, ...]:
    """An event without its timings and ids: what the order test compares."""
    data = event.model_dump(exclude={"run_id", "seconds", "usage", "result"})
    return (data.pop("type"), data.pop("step"), "/".join(data.pop("path")), *data.values())


def test_the_events_of_a_run_in_order(serve: Serve) -> None:
    _, model = serve(SCRIPT)

    streamed = list(support(model).stream("Refund A-1"))

    # Streamed from the model: the answers and the calls' arguments came in pieces.
    pieces = [e for e in streamed if e.type == "text_delta" and e.path == ["refund"]]
    assert len(pieces) > 1
    assert [said(event) for event in merged(streamed)] == [
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
    asked_to_stream = {"stream": True, "stream_options": {"include_usage": True}}
    for plain_request, streamed_request in zip(server.requests, again.requests, strict=True):
        assert streamed_request.body == {**plain_request.body, **asked_to_stream}


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


# -- streaming from the model -------------------------------------------------------------


def one_agent(model: fg.Model, tools: list[Any] = ()) -> fg.Flow:  # type: ignore[assignment]
    flow = fg.Flow("desk", model=model)
    flow.edge(fg.START, fg.Agent("clerk", "Help.", tools=list(tools)))
    flow.edge("clerk", fg.END)
    return flow


@pytest.mark.parametrize("clean", [False, True], ids=["connection dropped", "stream just stops"])
def test_a_cut_stream_is_retried_and_the_consumer_is_told(clean: bool) -> None:
    from flowgraph.testing import truncated

    with ScriptedServer(
        [truncated(after=3, reply="Refunded A-1.", clean=clean), "Refunded A-1."]
    ) as server:
        streamed = list(one_agent(server.model()).stream("Refund A-1"))

    kinds = [event.type for event in streamed]
    retried = kinds.index("request_retried")
    assert "text_delta" in kinds[:retried]  # the cut attempt had begun to answer
    event = streamed[retried]
    assert event.attempt == 2 and event.path == ["clerk"]  # type: ignore[union-attr]
    after = "".join(e.delta for e in streamed[retried:] if e.type == "text_delta")  # type: ignore[union-attr]
    assert after == "Refunded A-1."
    result = streamed[-1].result  # type: ignore[union-attr]
    assert (result.output, result.usage.requests) == ("Refunded A-1.", 1)
    assert len(server.requests) == 2


def test_a_model_that_does_not_stream_still_gives_its_text_as_a_delta() -> None:
    class Echo:
        name = "echo"

        async def complete(
            self, messages: Any, *, tools: Any = None, response_format: Any = None
        ) -> fg.Completion:
            return fg.Completion({"role": "assistant", "content": "echo"}, fg.Usage(requests=1))

    texts = [e.delta for e in one_agent(Echo()).stream("hi") if e.type == "text_delta"]  # type: ignore[union-attr]
    assert texts == ["echo"]


def test_parallel_tool_calls_stream_by_index_and_both_run() -> None:
    calls = [tool_call("lookup", {"order_id": "A-1"}), tool_call("lookup", {"order_id": "B-22"})]
    with ScriptedServer([calls, "Both delivered."]) as server:
        streamed = list(one_agent(server.model(), [lookup]).stream("Where are A-1 and B-22?"))

    arguments: dict[int, str] = {}
    for event in streamed:
        if event.type == "tool_call_delta":
            arguments[event.index] = arguments.get(event.index, "") + event.delta
    assert arguments == {0: '{"order_id": "A-1"}', 1: '{"order_id": "B-22"}'}
    started = [e.arguments for e in streamed if e.type == "tool_started"]  # type: ignore[union-attr]
    assert sorted(started) == ['{"order_id": "A-1"}', '{"order_id": "B-22"}']
    assert streamed[-1].result.output == "Both delivered."  # type: ignore[union-attr]


def test_stopping_mid_answer_cancels_the_request_and_leaves_no_task() -> None:
    long_answer = "word " * 400
    with ScriptedServer([long_answer], stream_delay=0.01) as server:
        flow = one_agent(server.model())

        async def main() -> tuple[int, int]:
            pieces = 0
            async for event in flow.astream("Talk."):
                if event.type == "text_delta":
                    pieces += 1
                    if pieces == 3:
                        break
            await asyncio.sleep(0.05)
            return pieces, len(asyncio.all_tasks())

        pieces, tasks = asyncio.run(main())
    assert (pieces, tasks) == (3, 1)


def test_a_resumed_run_streams_too(tmp_path: Path, serve: Serve) -> None:
    """The reply to a human reaches the run, and the rest of it streams."""
    _, model = serve(["Refund sent."])
    store = tmp_path / "runs.db"
    flow = fg.Flow("approvals", model=model)
    flow.edge(fg.START, fg.Human("approve", prompt="Refund A-1?"))
    flow.edge("approve", fg.Agent("payer", "Pay."))
    flow.edge("payer", fg.END)

    *_, paused = flow.stream("go", store=store)
    run_id = paused.run_id
    resumed = list(flow.stream_resume(run_id, store=store, reply="yes"))

    assert said(resumed[0]) == ("run_started", 1, "", "approvals", True)
    assert [e.type for e in merged(resumed)][1:] == [
        "node_entered",  # this stream's first sight of the Human node's visit
        "node_exited",  # which ends with the reply
        "handoff",
        "node_entered",
        "text_delta",
        "node_exited",
        "handoff",
        "run_finished",
    ]
    result = resumed[-1].result  # type: ignore[union-attr]
    assert (result.status, result.output, result.run_id) == ("completed", "Refund sent.", run_id)


# -- scripting streams (item 6) -------------------------------------------------------------


def test_a_stream_scripted_chunk_by_chunk_arrives_so() -> None:
    """openai-node's runTools cases: text in pieces, a tool call's arguments split
    across chunks, two calls interleaved, and no usage chunk."""
    from flowgraph.testing import call_delta, streamed

    reply = streamed(
        "Let me ",
        "look.",
        call_delta(0, id="call_a", name="lookup", arguments='{"order'),
        call_delta(1, id="call_b", name="lookup", arguments='{"order_id": '),
        call_delta(0, arguments='_id": "A-1"}'),
        call_delta(1, arguments='"B-2"}'),
        usage_chunk=False,
    )
    with ScriptedServer([reply, streamed("Both ", "are ", "delivered.")]) as server:
        streamed_events = list(one_agent(server.model(), [lookup]).stream("Where are they?"))

    pieces = [
        (e.type, getattr(e, "index", None), e.delta) for e in streamed_events if "delta" in e.type
    ]  # type: ignore[union-attr]
    assert pieces == [
        ("text_delta", None, "Let me "),
        ("text_delta", None, "look."),
        ("tool_call_delta", 0, '{"order'),
        ("tool_call_delta", 1, '{"order_id": '),
        ("tool_call_delta", 0, '_id": "A-1"}'),
        ("tool_call_delta", 1, '"B-2"}'),
        ("text_delta", None, "Both "),
        ("text_delta", None, "are "),
        ("text_delta", None, "delivered."),
    ]
    result = streamed_events[-1].result  # type: ignore[union-attr]
    first = result.messages[1]
    assert first["content"] == "Let me look."
    assert [c["function"]["arguments"] for c in first["tool_calls"]] == [
        '{"order_id": "A-1"}',
        '{"order_id": "B-2"}',
    ]
    assert result.usage.requests == 2
    assert result.usage.prompt_tokens > 0  # the second reply's usage chunk; the first had none


def test_a_streamed_script_answers_a_plain_request_with_what_it_makes_up(serve: Serve) -> None:
    from flowgraph.testing import call_delta, streamed

    reply = streamed(
        call_delta(0, name="lookup", arguments='{"order_id":'), call_delta(0, arguments=' "A-1"}')
    )
    _, model = serve([reply, "Delivered."])
    result = one_agent(model, [lookup]).run("Where is A-1?")
    call = result.messages[1]["tool_calls"][0]
    assert (call["function"]["name"], call["function"]["arguments"]) == (
        "lookup",
        '{"order_id": "A-1"}',
    )
    assert result.output == "Delivered."


def test_streamed_pieces_are_checked_when_scripted() -> None:
    from flowgraph.testing import call_delta, streamed

    with pytest.raises(ValueError, match="tool call 0 has no piece with its name"):
        streamed(call_delta(0, arguments="{}"))
    with pytest.raises(TypeError, match="streamed\\(\\) takes text and call_delta"):
        streamed(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="index must be a whole number"):
        call_delta(-1)


def test_tokens_from_an_agent_inside_a_sub_flow_are_tagged_with_its_path() -> None:
    inner = fg.Flow("research")
    inner.edge(fg.START, fg.Agent("searcher", "Search."))
    inner.edge("searcher", fg.END)
    with ScriptedServer(["Found three sources."]) as server:
        flow = fg.Flow("outer", model=server.model())
        flow.edge(fg.START, inner)
        flow.edge(inner, fg.END)
        streamed = list(flow.stream("Look it up."))

    texts = [e for e in streamed if e.type == "text_delta"]
    assert texts and all(e.path == ["research", "searcher"] for e in texts)
    assert "".join(e.delta for e in texts) == "Found three sources."  # type: ignore[union-attr]
    assert all(e.run_id == streamed[0].run_id for e in streamed)
