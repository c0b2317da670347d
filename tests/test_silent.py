"""Issue 17: what used to fail silently, or only sometimes."""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path

import pytest

import flowgraph as fg


def one_step() -> fg.Flow:
    flow = fg.Flow("one")
    flow.edge(fg.START, fg.ToolStep("noop", lambda: None))
    flow.edge("noop", fg.END)
    return flow


@pytest.mark.parametrize("store", [None, "runs.db"])
def test_context_that_is_not_json_fails_at_run_start_with_or_without_a_store(
    store: str | None, tmp_path: Path
) -> None:
    """It ran without a store and failed only with one (item 4)."""
    stored = tmp_path / store if store else None
    with pytest.raises(fg.RunError, match=r"\('when' holds a value of type datetime\)"):
        one_step().run("x", context={"when": datetime.datetime.now()}, store=stored)


def test_a_node_with_no_out_edge_is_a_warning_naming_it_and_the_fix() -> None:
    """It passed validate() without a word, and the run ended 'completed' there
    (item 2). Ending there stays legal (AG2's TERMINATE); validate says so."""
    flow = fg.Flow("forgetful")
    flow.edge(fg.START, fg.ToolStep("billing", lambda: "billed"))

    with pytest.warns(fg.FlowgraphWarning, match=r"node 'billing' has no out-edge.*fg\.END"):
        flow.validate()
    assert flow.run("go").reason == "node 'billing' has no out-edges"


def test_flowgraph_warnings_can_be_silenced_or_made_errors() -> None:
    flow = fg.Flow("forgetful")
    flow.edge(fg.START, fg.ToolStep("billing", lambda: "billed"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", fg.FlowgraphWarning)
        with pytest.raises(fg.FlowgraphWarning):
            flow.validate()
    assert issubclass(fg.FlowgraphWarning, UserWarning)


def test_a_tool_parameter_with_no_annotation_is_a_warning(tmp_path: Path) -> None:
    """It sent the schema {} and the model got no type (item 3)."""

    def lookup(order_id, ctx: fg.RunContext) -> str:  # type: ignore[no-untyped-def]
        """Look an order up."""
        return "shipped"

    flow = fg.Flow("untyped")
    agent = fg.Agent("clerk", "Help.", tools=[lookup])
    flow.edge(fg.START, agent)
    flow.edge(agent, fg.END)

    with pytest.warns(
        fg.FlowgraphWarning,
        match=r"agent 'clerk', tool 'lookup': parameter 'order_id' has no type.*order_id: str",
    ):
        flow.validate()


def test_mermaid_says_otherwise_on_a_fallback_beside_conditions_as_dot_does() -> None:
    """Item 11: DOT labelled such fallbacks "otherwise", Mermaid did not."""
    flow = fg.Flow("branching")
    flow.edge(fg.START, fg.ToolStep("a", lambda: 1))
    flow.edge("a", fg.ToolStep("b", lambda: 2), when=lambda ctx: True)
    flow.edge("a", fg.END)
    flow.edge("b", fg.END)

    mermaid = flow.to_mermaid()

    assert 'n_a -->|"otherwise"| n_END' in mermaid
    assert "n_b --> n_END" in mermaid  # a lone edge needs no word
    assert "otherwise" in flow.to_dot()


def test_a_picture_of_an_edge_to_an_undeclared_node_is_a_validation_error() -> None:
    """Item 11: to_mermaid drew it as a phantom node; to_dot left it out silently."""
    flow = fg.Flow("dangling")
    flow.edge(fg.START, fg.ToolStep("a", lambda: 1))
    flow.edge("a", "ghots")
    flow.add(fg.ToolStep("ghost", lambda: 2))

    for draw in (flow.to_mermaid, flow.to_dot):
        with pytest.raises(fg.FlowValidationError, match=r"no node 'ghots' \(did you mean"):
            draw()


def test_run_inside_a_running_loop_warns_once_per_flow_naming_arun() -> None:
    """flow.run() inside asyncio.run(main()) blocked that loop for the whole run
    without a word (item 1). It still works (Jupyter and outside code rely on it);
    it says so once per flow, and points at the caller's line."""
    import asyncio

    flow, other = one_step(), one_step()

    async def main() -> list[warnings.WarningMessage]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert flow.run("a").status == "completed"
            assert flow.run("b").status == "completed"
            other.run("c")
        return caught

    caught = [w for w in asyncio.run(main()) if issubclass(w.category, RuntimeWarning)]
    assert len(caught) == 2, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert "flow 'one'" in message and "await flow.arun(" in message
    assert caught[0].filename == __file__


def test_run_from_plain_code_or_a_worker_thread_does_not_warn() -> None:
    import concurrent.futures

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert one_step().run("a").status == "completed"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            assert pool.submit(one_step().run, "b").result().status == "completed"


RUNS_AND_EXITS = """
import asyncio, gc, sys
import flowgraph as fg
from flowgraph.testing import ScriptedServer, tool_call

def lookup(order_id: str) -> str:
    '''Look an order up.'''
    return "shipped"

with ScriptedServer([tool_call("lookup", {"order_id": "A-1"}), "Shipped.", "Again."]) as server:
    flow = fg.Flow("f", model=server.model())
    clerk = fg.Agent("clerk", "Help.", tools=[lookup])
    flow.edge(fg.START, clerk)
    flow.edge(clerk, fg.END)
    if sys.argv[1] == "run":
        print(flow.run("Where is A-1?").output)
    else:
        print(asyncio.run(flow.arun("Where is A-1?")).output)
    gc.collect()
print("end")
"""


@pytest.mark.parametrize("how", ["run", "arun"])
def test_a_run_leaves_no_unclosed_transport_behind(how: str, tmp_path: Path) -> None:
    """-W default showed 'ResourceWarning: unclosed transport' on every run (item 5):
    the client's connections were never closed, neither when asyncio.run's loop ended
    nor when the process did."""
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(RUNS_AND_EXITS)
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "always::ResourceWarning", str(script), how],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Shipped.", "end"]
    assert "ResourceWarning" not in done.stderr, done.stderr
