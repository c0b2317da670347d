"""Issue 17: what used to fail silently, or only sometimes."""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path
from typing import Any

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


# -- pictures (items 2, 9, 10) ------------------------------------------------------------


def test_the_picture_marks_a_node_with_no_out_edge_as_an_end_in_sub_flows_too() -> None:
    """Item 2: a run that reaches such a node ends there; the picture says so."""
    inner = fg.Flow("inner")
    inner.edge(fg.START, fg.ToolStep("deep", lambda: "deep"))
    flow = fg.Flow("forgetful")
    flow.edge(fg.START, inner)
    flow.edge(inner, fg.ToolStep("billing", lambda: "billed"))

    dot = flow.to_dot()
    assert 'billing -> END [label=<ends here> color="#9ca3af"' in dot
    assert '"inner/deep" -> "inner/END" [label=<ends here>' in dot
    assert 'n_billing -.->|"ends here"| n_END' in flow.to_mermaid()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fg.FlowgraphWarning)
        result = flow.run("go")
    run = result.render().source
    assert 'billing -> END [label=<ends here<br/><b>→ end</b>> color="#dc2626"' in run
    assert '"inner/deep" -> "inner/END" [label=<ends here<br/><b>→ end</b>>' in run


def test_a_run_picture_names_the_model_that_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 9: it said 'default model' where the run had resolved one."""
    from flowgraph.testing import ScriptedServer

    with ScriptedServer(["Hello."]) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("FLOWGRAPH_MODEL", "house-model")
        flow = fg.Flow("greeter")
        flow.edge(fg.START, fg.Agent("greet", "Greet."))
        flow.edge("greet", fg.END)
        assert "house-model (default)" in flow.to_dot()  # the flow alone: as resolved now
        result = flow.run("hi")

    assert result.trace[0].model == "house-model"
    dot = result.render().source
    assert "house-model</font>" in dot and "(default)" not in dot  # what ran


def test_a_failed_run_picture_says_why_shortened() -> None:
    """Item 9: the node was filled red, and nothing said why."""

    def post(ctx: fg.RunContext) -> str:
        raise ValueError("the ledger is locked by the month-end close, try again at 9:00")

    flow = fg.Flow("books")
    flow.edge(fg.START, fg.ToolStep("post", post))
    flow.edge("post", fg.END)
    with pytest.raises(fg.RunError) as caught:
        flow.run("go")
    assert caught.value.result is not None

    dot = caught.value.result.render().source
    label = dot.split("\tpost [label=")[1].split("\n")[0].replace("<br/>", " ")
    assert "failed: ValueError: the ledger is locked" in label
    assert "…" in label and "9:00" not in label  # shortened
    assert "tool step &#x27;post&#x27; raised" not in label  # the node says which
    mermaid = caught.value.result.to_mermaid()
    assert "failed: ValueError: the ledger is locked" in mermaid


def test_a_one_line_lambda_predicate_is_labelled_with_its_source() -> None:
    """Item 9: it was labelled '<lambda>()'."""
    flow = fg.Flow("lambdas")
    flow.edge(fg.START, fg.ToolStep("a", lambda: 1))
    flow.edge("a", fg.ToolStep("b", lambda: 2), when=lambda ctx: "vip" in ctx.context)
    flow.edge("a", fg.ToolStep("c", lambda: 3), when=is_done)
    flow.edge(
        "a",
        fg.END,
        when=lambda ctx: (
            ctx.context.get("n", 0)  # on two lines
            > 3
        ),
    )
    for name in "bc":
        flow.edge(name, fg.END)

    dot = flow.to_dot()
    assert "a -> b [label=<if &quot;vip&quot; in ctx.context>" in dot
    assert "a -> c [label=<if is_done()>" in dot
    assert "a -> END [label=<if &lt;lambda&gt;()>" in dot  # not one line: its name
    assert 'n_a -->|"if #quot;vip#quot; in ctx.context"| n_b' in flow.to_mermaid()


def is_done(ctx: fg.RunContext) -> bool:
    return False


def test_hook_injections_and_flows_run_by_hooks_are_in_the_trace_and_the_picture() -> None:
    """Item 10: neither the picture nor the trace showed what a hook did."""
    research = fg.Flow("research")
    research.edge(fg.START, fg.ToolStep("search", lambda: "Returns within 30 days."))
    research.edge("search", fg.END)

    async def brief(hook: fg.HookContext) -> None:
        if hook.node != "intake":
            return
        found = await research.arun("returns policy")
        hook.inject({"role": "system", "content": f"Research: {found.output}"})

    def quiet(hook: fg.HookContext) -> None:
        hook.context["seen"] = True  # changes nothing a picture shows

    flow = fg.Flow("desk")
    flow.edge(fg.START, fg.ToolStep("intake", lambda: "ok"))
    flow.edge("intake", fg.ToolStep("answer", lambda: "done"))
    flow.edge("answer", fg.END)
    flow.after_completion(brief)
    flow.after_completion(quiet)

    result = flow.run("hi")

    intake, answer = result.trace
    assert [(h.hook, h.point, h.injected, h.flows) for h in intake.hooks] == [
        ("brief", "node_exit", ["system"], ["research"])
    ]
    assert answer.hooks == []
    dot = result.render().source
    label = dot.split("\tintake [label=")[1].split("\n")[0]
    assert "hook brief: +1 system, ran research" in label
    assert "hook" not in dot.split("\tanswer [label=")[1].split("\n")[0]


def test_models_and_hook_records_are_stored_and_a_format_5_store_is_upgraded(
    tmp_path: Path,
) -> None:
    """The records items 9 and 10 add are committed with the run; a store written
    before them (format 5) reads as it was and is marked as this version's."""
    import asyncio
    import sqlite3

    from flowgraph.testing import ScriptedServer

    def brief(hook: fg.HookContext) -> None:
        hook.inject({"role": "developer", "content": "Be brief."})

    path = tmp_path / "runs.db"
    with ScriptedServer(["Hi!"]) as server:
        flow = fg.Flow("greeter", model=server.model())
        greet = fg.Agent("greet", "Greet.", after_completion=[brief])
        flow.edge(fg.START, fg.ToolStep("prepare", lambda: "ready"))
        flow.edge("prepare", greet)
        flow.edge(greet, fg.END)
        result = flow.run("hi", store=path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 5")  # as the version before wrote it

    store = fg.SQLiteCheckpointer(path)
    stored = asyncio.run(store.load(result.run_id))
    assert stored is not None
    assert [fg.StepRecord.model_validate(r) for r in stored.trace] == result.trace
    assert result.trace[1].model == "scripted" and result.trace[0].model is None
    assert [(h.hook, h.point, h.injected) for h in result.trace[1].hooks] == [
        ("brief", "completion", ["developer"]),
        ("brief", "node_exit", ["developer"]),  # an agent's hooks run at its exit too
    ]
    flow.runs(store)  # opened for writing: marked as this version's
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 6


def test_a_custom_model_that_returns_a_dict_gets_an_error_naming_fg_completion() -> None:
    """Item 12: a dict failed with "'dict' object has no attribute 'usage'"."""

    class Parrot:
        name = "parrot"

        async def complete(self, messages: Any, *, tools: Any = None, response_format: Any = None):  # type: ignore[no-untyped-def]
            return {"role": "assistant", "content": "hi"}

    flow = fg.Flow("parrots", model=Parrot())
    flow.edge(fg.START, fg.Agent("polly"))
    flow.edge("polly", fg.END)
    with pytest.raises(fg.ModelError) as caught:
        flow.run("hello")
    message = str(caught.value)
    assert "node 'polly'" in message and "parrot" in message
    assert "returned a dict, not an fg.Completion" in message
    assert "fg.Completion(message, fg.Usage(" in message


def test_an_agent_with_no_model_anywhere_is_drawn_saying_so(no_default_model: None) -> None:
    flow = fg.Flow("modelless")
    flow.edge(fg.START, fg.Agent("clerk"))
    flow.edge("clerk", fg.END)
    assert '<font point-size="10">no model set</font>' in flow.to_dot()


def test_stream_inside_a_running_loop_warns_as_run_does() -> None:
    import asyncio

    flow = one_step()

    async def main() -> list[warnings.WarningMessage]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert [e.type for e in flow.stream("a")][-1] == "run_finished"
        return caught

    caught = [w for w in asyncio.run(main()) if issubclass(w.category, RuntimeWarning)]
    assert len(caught) == 1 and "async for event in flow.astream(" in str(caught[0].message)
    assert caught[0].filename == __file__
