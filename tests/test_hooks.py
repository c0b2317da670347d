"""after_completion hooks (inspect, change context, inject) and observer events."""

from __future__ import annotations

from typing import Any

import pytest

import flowgraph as fg
from flowgraph.testing import ChatRequest, tool_call

from .conftest import Serve, roles


def lookup_policy(topic: str) -> str:
    """Look up the shop's policy on a topic."""
    return "no policy found"


def build_support(model: fg.Model, research_flow: fg.Flow, seen: list[str]) -> fg.Flow:
    support = fg.Agent("support", "Answer the customer.", tools=[lookup_policy])
    flow = fg.Flow("support", model=model)
    flow.edge(fg.START, support)
    flow.edge(support, fg.END)

    @flow.after_completion
    async def research(hook: fg.HookContext) -> None:
        seen.append(f"{hook.point}@{hook.node}")
        last = hook.messages[-1]
        stuck = last["role"] == "tool" and last["content"] == "no policy found"
        if stuck and not hook.context.get("researched"):
            hook.context["researched"] = True
            finding = await research_flow.arun(f"Research: {hook.messages[0]['content']}")
            hook.inject({"role": "system", "content": f"Research finding: {finding.output}"})

    return flow


def test_seed_scenario_a_hook_runs_a_research_flow_and_injects_its_finding(
    serve: Serve,
) -> None:
    def script(request: ChatRequest) -> Any:
        system = request.system or ""
        if system.startswith("You research"):
            return "Refunds are allowed within 30 days."
        if request.last_message["role"] == "user":
            return tool_call("lookup_policy", {"topic": "refunds"})
        return "You can get a refund within 30 days."

    server, model = serve(script)
    researcher = fg.Agent("researcher", "You research shop policies.")
    research_flow = fg.Flow("research", model=model)
    research_flow.edge(fg.START, researcher)
    research_flow.edge(researcher, fg.END)
    seen: list[str] = []

    result = build_support(model, research_flow, seen).run("Can I get a refund?")

    assert result.output == "You can get a refund within 30 days."
    assert result.context == {"researched": True}
    assert [r.system for r in server.requests] == [
        "Answer the customer.",
        "You research shop policies.",
        "Answer the customer.",
    ]
    final = server.requests[2].messages
    assert roles(final) == ["system", "user", "assistant", "tool", "system"]
    assert final[3]["tool_call_id"] == final[2]["tool_calls"][0]["id"]
    assert final[4] == {
        "role": "system",
        "content": "Research finding: Refunds are allowed within 30 days.",
    }
    assert seen == ["completion@support", "completion@support", "node_exit@support"]
    assert result.usage.requests == 2  # the research flow's request is its own run's


def test_injections_land_after_every_tool_result_of_a_parallel_completion(
    serve: Serve,
) -> None:
    server, model = serve(
        [
            [
                tool_call("lookup_policy", {"topic": "a"}),
                tool_call("lookup_policy", {"topic": "b"}),
            ],
            "done",
        ]
    )
    agent = fg.Agent("agent", tools=[lookup_policy])
    flow = fg.Flow("f", model=model)
    flow.edge(fg.START, agent)

    @agent.after_completion
    def note(hook: fg.HookContext) -> None:  # a sync hook: runs in a worker thread
        if hook.completion and hook.completion.get("tool_calls"):
            hook.inject({"role": "user", "content": "(note) keep it short"})

    flow.run("go")

    assert roles(server.requests[1].messages) == [  # no instructions: no system message
        "user",
        "assistant",
        "tool",
        "tool",
        "user",
    ]


def test_a_node_exit_hook_changes_the_context_before_edges_are_decided() -> None:
    flow = fg.Flow("exit")
    flow.edge(fg.START, fg.ToolStep("check", lambda: "checked"))
    flow.edge(
        "check", fg.ToolStep("flagged", lambda: "flagged"), when=lambda ctx: ctx.context.get("flag")
    )
    flow.edge("check", fg.ToolStep("normal", lambda: "normal"))

    @flow.after_completion
    def flag(hook: fg.HookContext) -> None:
        assert hook.point == "node_exit" and hook.completion is None
        if hook.node == "check":
            hook.context["flag"] = True
            hook.inject({"role": "user", "content": "flagged by a hook"})

    result = flow.run("go")

    assert result.path == ["check", "flagged"]
    assert result.messages[2] == {"role": "user", "content": "flagged by a hook"}


def test_per_agent_hooks_run_only_for_their_agent(serve: Serve) -> None:
    _, model = serve([tool_call("transfer_to_b"), "b here"])
    a, calls = fg.Agent("a"), []
    b = fg.Agent("b", after_completion=[lambda hook: calls.append(hook.node)])
    flow = fg.Flow("two", model=model)
    flow.edge(fg.START, a)
    flow.edge(a, b, when="Always.")

    flow.run("go")

    assert calls == ["b", "b"]  # after b's completion and at b's exit


class Recorder(fg.Hooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def on_node_enter(self, event: fg.NodeEvent) -> None:
        self.events.append(("enter", event.node))

    async def on_node_exit(self, event: fg.NodeEvent) -> None:
        self.events.append(("exit", event.node, str(event.output)))

    def on_tool_start(self, event: fg.ToolEvent) -> None:
        self.events.append(("tool_start", event.tool, event.arguments))

    def on_tool_end(self, event: fg.ToolEvent) -> None:
        self.events.append(("tool_end", event.tool, str(event.result), str(event.failed)))

    def on_handoff(self, event: fg.HandoffEvent) -> None:
        self.events.append(("handoff", event.source, event.target, event.kind))


def test_observer_events_arrive_in_order(serve: Serve) -> None:
    _, model = serve(
        [tool_call("lookup_policy", {"topic": "x"}), tool_call("transfer_to_b"), "bye"]
    )
    a, b = fg.Agent("a", tools=[lookup_policy]), fg.Agent("b")
    flow = fg.Flow("observed", model=model)
    flow.edge(fg.START, a)
    flow.edge(a, b, when="Always.")
    flow.edge(b, fg.END)
    recorder = flow.add_hooks(Recorder())
    entered: list[str] = []
    flow.on("node_enter", lambda event: entered.append(event.node))

    flow.run("go")

    assert isinstance(recorder, Recorder)
    assert recorder.events == [
        ("handoff", "START", "a", "fallback"),
        ("enter", "a"),
        ("tool_start", "lookup_policy", '{"topic": "x"}'),
        ("tool_end", "lookup_policy", "no policy found", "False"),
        ("exit", "a", "None"),
        ("handoff", "a", "b", "llm"),
        ("enter", "b"),
        ("exit", "b", "bye"),
        ("handoff", "b", "END", "fallback"),
    ]
    assert entered == ["a", "b"]


def test_an_error_in_a_hook_fails_the_run_naming_hook_and_node() -> None:
    flow = fg.Flow("failing")
    flow.edge(fg.START, fg.ToolStep("work", lambda: 1))
    errors: list[str] = []
    flow.on("error", lambda event: errors.append(f"{event.node}: {event.error}"))

    @flow.after_completion
    def broken(hook: fg.HookContext) -> None:
        raise ValueError("oops")

    with pytest.raises(
        fg.RunError,
        match="the after_completion hook 'broken' raised at node 'work': ValueError: oops",
    ) as caught:
        flow.run("go")
    assert caught.value.node == "work"
    assert errors == [f"work: {caught.value}"]


def test_injecting_a_tool_message_is_refused() -> None:
    flow = fg.Flow("bad-inject")
    flow.edge(fg.START, fg.ToolStep("work", lambda: 1))
    flow.after_completion(
        lambda hook: hook.inject({"role": "tool", "tool_call_id": "x", "content": "forged"})
    )

    with pytest.raises(fg.RunError, match="cannot inject a message with role 'tool'"):
        flow.run("go")


def test_unknown_event_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown event 'node_start': use one of node_enter"):
        fg.Flow("f").on("node_start", print)  # type: ignore[call-overload]


@pytest.mark.filterwarnings("ignore:an observer:RuntimeWarning")  # those pytest.warns misses
def test_an_observer_that_raises_is_reported_and_the_run_goes_on(serve: Serve) -> None:
    """Issue 16, item 12: an observer's failure killed the run and the error blamed the
    tool step. Observers watch; they do not decide: a note and a warning say it."""
    _, model = serve([tool_call("lookup", {"order": "A-1"}), "Found it."])

    def lookup(order: str) -> str:
        """Look an order up."""
        return "shipped"

    flow = fg.Flow("watched", model=model)
    agent = fg.Agent("clerk", "Help.", tools=[lookup])
    flow.edge(fg.START, fg.ToolStep("work", lambda: 1))
    flow.edge("work", agent)
    flow.edge(agent, fg.END)

    def broken(event: object) -> None:
        raise ValueError("the dashboard is down")

    for event in ("node_enter", "node_exit", "handoff", "tool_start", "tool_end"):
        flow.on(event, broken)  # type: ignore[call-overload]

    with pytest.warns(RuntimeWarning, match="observer 'broken' of node_exit raised ValueError"):
        result = flow.run("go")

    assert result.status == "completed" and result.output == "Found it."
    said = [note for note in result.notes if "the dashboard is down" in note]
    assert len(said) == 9  # enter and exit of two nodes, three hand-offs, a tool's start and end
    assert (
        "an observer 'broken' of node_enter raised ValueError: the dashboard is down "
        "(at node 'work'); the run went on"
    ) in said
