"""Validation: a broken flow fails before any request, naming the node or edge and the fix."""

from __future__ import annotations

from typing import Any

import pytest

import flowgraph as fg

from .conftest import Serve

MODEL = fg.OpenAIModel("any", base_url="http://127.0.0.1:9/v1", api_key="k")


def step(name: str) -> fg.ToolStep:
    return fg.ToolStep(name, lambda: name)


def test_a_valid_flow_passes_and_its_graph_is_a_multidigraph() -> None:
    a, b = step("a"), step("b")
    flow = fg.Flow("ok", model=MODEL)
    flow.edge(fg.START, a)
    flow.edge(a, b, when=lambda ctx: True)
    flow.edge(a, b, when="Also by the LLM.")
    flow.edge(a, fg.END)
    flow.edge(b, fg.END)

    flow.validate()
    graph = flow.graph

    assert sorted(graph.nodes) == ["END", "START", "a", "b"]
    assert graph.number_of_edges("a", "b") == 2
    assert [d["kind"] for _, _, d in graph.edges("a", data=True)] == [
        "predicate",
        "llm",
        "fallback",
    ]
    assert graph.nodes["a"]["kind"] == "tool"


def test_unknown_node_names_are_named_with_a_suggestion() -> None:
    flow = fg.Flow("typo")
    flow.edge(fg.START, step("refund"))
    flow.edge("refund", "refnd_desk", when="Desk.")
    flow.edge("refund", "notify", when=lambda ctx: True)

    with pytest.raises(fg.FlowValidationError) as caught:
        flow.validate()
    assert caught.value.problems == [
        "edge 'refund' -> 'refnd_desk': there is no node 'refnd_desk' (did you mean "
        "'refund'?); pass the node object to flow.edge(), or add it with flow.add(node)",
        "edge 'refund' -> 'notify': there is no node 'notify'; pass the node object to "
        "flow.edge(), or add it with flow.add(node)",
    ]


def test_duplicate_node_names_fail_at_once() -> None:
    flow = fg.Flow("dupes")
    flow.edge(fg.START, step("a"))
    with pytest.raises(
        fg.FlowValidationError,
        match="flow 'dupes' has two different nodes "
        "named 'a'.*node names must be unique; rename one",
    ):
        flow.edge("a", step("a"))


def test_no_edge_from_start() -> None:
    flow = fg.Flow("headless")
    flow.add(step("a"))
    with pytest.raises(
        fg.FlowValidationError,
        match=r"flow 'headless' is not valid: it has "
        r"no edge from START: add flow.edge\(fg.START, first_node\)",
    ):
        flow.validate()


def test_unreachable_nodes_and_edges_into_start_or_out_of_end() -> None:
    a, island = step("a"), step("island")
    flow = fg.Flow("islands")
    flow.edge(fg.START, a)
    flow.edge(a, fg.START)
    flow.edge(fg.END, a)
    flow.edge(island, fg.END)

    with pytest.raises(fg.FlowValidationError) as caught:
        flow.validate()
    assert caught.value.problems == [
        "edge 'a' -> 'START': no edge may lead into START; route back to a node instead",
        "edge 'END' -> 'a': no edge may leave END, where the run ends",
        "nodes not reachable from START: ['island']. Add an edge that leads to them, or leave "
        "them out of the flow",
    ]


def test_two_fallbacks_and_duplicate_llm_conditions() -> None:
    a = fg.Agent("a")
    flow = fg.Flow("ambiguous", model=MODEL)
    flow.edge(fg.START, a)
    flow.edge(a, step("b"), when="One.")
    flow.edge(a, "b", when="Two.")
    flow.edge(a, step("c"))
    flow.edge(a, fg.END)

    with pytest.raises(fg.FlowValidationError) as caught:
        flow.validate()
    assert caught.value.problems == [
        "edge 'a' -> 'b' has two LLM conditions: merge them into one string (the agent gets "
        "one transfer tool per target)",
        "node 'a' has 2 unconditional edges (to ['c', 'END']): parallel branches are not "
        "supported yet; give all but one a condition (when=...)",
    ]


def test_no_model_for_an_agent_or_an_llm_condition(no_default_model: None) -> None:
    agent, check = fg.Agent("agent"), step("check")
    flow = fg.Flow("modelless")
    flow.edge(fg.START, check)
    flow.edge(check, agent, when="The order is late.")

    with pytest.raises(fg.FlowValidationError) as caught:
        flow.validate()
    # One problem naming all that needs a model, the fix said once (issue 17, item 8).
    (problem,) = caught.value.problems
    assert problem.startswith(
        "agent 'agent' and the LLM condition of edge 'check' -> 'agent' need a model: "
        "no model is configured. Pass model=fg.OpenAIModel('gpt-4.1-mini')"
    )
    assert problem.count("pip install 'flowgraph[local]'") == 1
    flow.model = MODEL
    flow.validate()  # the flow's model serves both


def test_no_model_in_a_sub_flow_is_named_with_the_rest_once(no_default_model: None) -> None:
    inner = fg.Flow("inner")
    inner.edge(fg.START, fg.Agent("helper"))
    inner.edge("helper", fg.END)
    lent = fg.Flow("lent", model=MODEL)  # its own model: nothing in it is missing one
    lent.edge(fg.START, fg.Agent("fine"))
    lent.edge("fine", fg.END)
    outer = fg.Flow("outer")
    outer.edge(fg.START, fg.Agent("lead"))
    outer.edge("lead", inner)
    outer.edge(inner, lent)
    outer.edge(lent, fg.END)

    with pytest.raises(fg.FlowValidationError) as caught:
        outer.validate()
    (problem,) = caught.value.problems
    assert problem.startswith("agent 'lead' and agent 'helper' in sub-flow 'inner' need a model")
    outer.model = MODEL
    outer.validate()  # lent to the sub-flow too


def bad_tool(*orders: str) -> str:
    return ""


class Opaque:
    pass


def opaque_tool(thing: Opaque) -> str:
    """Takes something no JSON schema describes."""
    return ""


def test_a_tool_whose_signature_cannot_become_a_json_schema() -> None:
    agent = fg.Agent("agent", tools=[bad_tool, opaque_tool, fg.Tool(lambda: 1)])
    flow = fg.Flow("tools", model=MODEL)
    flow.edge(fg.START, agent)

    with pytest.raises(fg.FlowValidationError) as caught:
        flow.validate()
    assert caught.value.problems[0] == (
        "agent 'agent': tool 'bad_tool': parameter 'orders' is variadic positional; a tool "
        "is called with keyword arguments only, so give it plain named parameters"
    )
    assert caught.value.problems[1].startswith(
        "agent 'agent': tool 'opaque_tool': its signature cannot become a JSON schema ("
    )
    assert caught.value.problems[1].endswith("a pydantic model, a dataclass or a TypedDict")
    assert caught.value.problems[2].startswith("agent 'agent': tool name '<lambda>' is not allowed")


def test_tool_names_must_be_unique_and_not_look_like_transfers() -> None:
    def transfer_to_x() -> str:
        return ""

    def find(order_id: str) -> str:
        return order_id

    agent = fg.Agent("agent", tools=[find, fg.Tool(transfer_to_x, name="find"), transfer_to_x])
    flow = fg.Flow("names", model=MODEL)
    flow.edge(fg.START, agent)

    with pytest.raises(fg.FlowValidationError) as caught:
        flow.validate()
    assert "agent 'agent' has two tools named 'find'" in str(caught.value)
    assert "tool name 'transfer_to_x' is reserved for hand-offs" in str(caught.value)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: fg.Agent("has space"), "Agent name 'has space' is not allowed"),
        (lambda: fg.Agent("END"), "Agent name 'END' is reserved for fg.END"),
        (lambda: fg.ToolStep("x" * 53, lambda: 1), "at most 52 characters"),
        (
            lambda: fg.ToolStep("two_args", lambda a, b: 1),
            "the function of tool step 'two_args' must accept 0 or 1 positional argument",
        ),
        (
            lambda: fg.Agent("a", instructions=lambda: "x"),
            "the instructions of agent 'a' must accept 1 positional argument",
        ),
        (lambda: fg.Agent("a", max_turns=0), "agent 'a': max_turns must be at least 1"),
        (
            lambda: fg.Flow("f").edge(fg.START, step("a"), when="  "),
            "edge 'START' -> 'a': the condition is empty",
        ),
        (
            lambda: fg.Flow("f").edge(fg.START, step("a"), when=lambda: True),
            "the predicate of edge 'START' -> 'a' must accept 1 positional argument",
        ),
        (lambda: fg.Flow("f").edge(fg.START, object()), "is not a node"),  # type: ignore[arg-type]
    ],
)
def test_bad_building_blocks_fail_where_they_are_made(build: Any, message: str) -> None:
    with pytest.raises(fg.FlowValidationError, match=message):
        build()


def test_validation_runs_before_any_request(serve: Serve) -> None:
    server, model = serve(["never sent"])
    flow = fg.Flow("broken", model=model)
    flow.edge(fg.START, fg.Agent("a"))
    flow.edge("a", "missing")

    with pytest.raises(fg.FlowValidationError, match="there is no node 'missing'"):
        flow.run("go")
    assert server.requests == []


def test_a_node_of_a_kind_flowgraph_cannot_run() -> None:
    class Custom(fg.Node):
        pass

    flow = fg.Flow("custom")
    flow.edge(fg.START, Custom("mine"))
    flow.edge("mine", fg.END)
    with pytest.raises(fg.FlowValidationError, match=r"node 'mine' is a Custom, which flowgraph"):
        flow.validate()
