"""Drawing flows with the real graphviz `dot`, and as Mermaid text."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import flowgraph as fg
from flowgraph.testing import tool_call

from .conftest import Serve

SNAPSHOTS = Path(__file__).parent / "snapshots"
MODEL = fg.OpenAIModel("gpt-4.1-mini", base_url="http://127.0.0.1:9/v1", api_key="k")


def lookup_order(order_id: str) -> str:
    """Look up an order."""
    return order_id


def is_vip(ctx: fg.RunContext[dict[str, bool]]) -> bool:
    return ctx.context.get("vip", False)


def send_receipt() -> str:
    return "sent"


def keywords(agent: fg.Agent, messages: list[dict[str, Any]], args: dict[str, Any]) -> str:
    return "keywords"


def every_kind(condition: str = "The customer wants money back.") -> fg.Flow:
    """A flow with every node kind and every edge kind."""
    triage = fg.Agent("triage", "Route.", tools=[lookup_order])
    critic, poet, student = fg.Agent("critic"), fg.Agent("poet"), fg.Agent("student")
    verify = fg.NestedChat(
        "verify",
        [
            fg.Chat(critic, "Sum it up.", carryover=keywords),
            fg.Chat(poet, "Write a poem.", summary="reflection", max_turns=2, sender=student),
        ],
    )
    checks = fg.Flow("checks")
    checks.edge(fg.START, fg.ToolStep("check_id", send_receipt))
    checks.edge("check_id", fg.END)
    receipt = fg.ToolStep("receipt", send_receipt)
    flow = fg.Flow("support", model=MODEL)
    flow.edge(fg.START, triage)
    flow.edge(triage, fg.Agent("refund", model=fg.OpenAIModel("gpt-4.1")), when=condition)
    flow.edge(triage, verify, when="Verify first.")
    flow.edge(triage, receipt, when=is_vip)
    flow.edge(triage, fg.END)
    flow.edge("refund", checks)
    flow.edge(checks, receipt)
    flow.edge(verify, receipt)
    flow.edge(receipt, fg.END)
    return flow


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed: UPDATE_SNAPSHOTS=1 to accept"


def test_dot_snapshot_of_every_node_and_edge_kind() -> None:
    check_snapshot("every_kind.dot", every_kind().to_dot())


def test_dot_snapshot_compact_left_to_right() -> None:
    check_snapshot("every_kind_compact.dot", every_kind().to_dot(direction="LR", detail="compact"))


def test_mermaid_snapshot_of_every_node_and_edge_kind() -> None:
    check_snapshot("every_kind.mmd", every_kind().to_mermaid())


def test_shapes_and_styles_by_kind() -> None:
    dot = every_kind().to_dot()

    assert "triage [label=<<b>triage</b><br/>" in dot
    assert "tools: lookup_order" in dot
    assert "shape=component" in dot  # tool step
    assert "subgraph cluster_verify" in dot and "subgraph cluster_checks" in dot
    assert '"verify/chat0" -> "verify/chat1"' in dot
    assert "carryover: keywords()" in dot and "2 turns with student" in dot
    assert (
        'triage -> refund [label=<The customer wants money<br/>back.> color="#1d4ed8" '
        'fontcolor="#1d4ed8" style=dashed]'
    ) in dot
    assert 'triage -> "verify/chat0" [label=<Verify first.>' in dot
    assert "lhead=cluster_verify" in dot
    assert "triage -> receipt [label=<if is_vip()>" in dot
    assert "triage -> END [label=<otherwise>" in dot


def test_hostile_labels_are_escaped() -> None:
    hostile = 'He said "hi" <b>bold</b> & then }; evil -> x [label="pwned"]\\N\r\nnext\rline\nend'
    flow = every_kind(hostile)
    dot = flow.to_dot()

    assert 'label="pwned"]' not in dot
    assert "&quot;hi&quot; &lt;b&gt;bold&lt;/b&gt; &amp;" in dot
    assert "\r" not in dot
    (edge,) = [line for line in dot.splitlines() if line.startswith("\ttriage -> refund ")]
    assert "\\N next line<br/>end>" in edge  # a line break is a space, on one DOT line
    svg = flow.render().pipe(format="svg").decode()
    ET.fromstring(svg)  # still a well-formed picture
    assert "&lt;b&gt;bold&lt;/b&gt;" in svg
    mermaid = flow.to_mermaid()
    assert "#quot;hi#quot; #lt;b#gt;bold#lt;/b#gt;" in mermaid
    assert '[label="pwned"]' not in mermaid
    assert "\r" not in mermaid
    (edge,) = [line for line in mermaid.splitlines() if "n_triage -.->" in line and "hi" in line]
    assert edge.endswith('N  next line end"| n_refund')
    assert len(mermaid.splitlines()) == len(every_kind().to_mermaid().splitlines())


def test_line_breaks_in_names_become_spaces() -> None:
    def vip(ctx: fg.RunContext[dict[str, bool]]) -> bool:
        return True

    vip.__name__ = "is\r\nvip\rnow"
    flow = fg.Flow("two\nlines")
    flow.edge(fg.START, fg.ToolStep("a", lambda: 1), when=vip)

    dot, mermaid = flow.to_dot(), flow.to_mermaid()

    assert "label=<flow: two lines>" in dot
    assert "START -> a [label=<if is vip now()>" in dot
    assert "\r" not in dot and "\r" not in mermaid
    assert 'n_START -->|"if is  vip now()"| n_a' in mermaid
    assert "is vip now()" in flow.render().pipe(format="svg").decode()


def test_render_writes_png_svg_pdf_and_dot(tmp_path: Path) -> None:
    flow = every_kind()
    for name in ("flow.png", "flow.svg", "flow.pdf", "flow.dot", "deeper/dir/flow.svg"):
        flow.render(str(tmp_path / name))

    assert (tmp_path / "flow.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert ET.fromstring((tmp_path / "flow.svg").read_text()).tag.endswith("svg")
    assert (tmp_path / "flow.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "flow.dot").read_text() == flow.to_dot()
    assert (tmp_path / "deeper/dir/flow.svg").exists()
    flow.render(str(tmp_path / "picture"), format="svg")
    ET.fromstring((tmp_path / "picture").read_text())


def test_bad_formats_options_and_paths_are_clear_errors(tmp_path: Path) -> None:
    flow = every_kind()
    with pytest.raises(
        fg.UsageError, match="cannot render .* as 'bmp': use one of png, svg, pdf, dot"
    ):
        flow.render(str(tmp_path / "flow.bmp"))
    with pytest.raises(fg.UsageError, match="unknown direction 'UP': use one of TB, LR"):
        flow.render(direction="UP")
    with pytest.raises(fg.UsageError, match="unknown detail 'all': use one of full, compact"):
        flow.to_dot(detail="all")
    with pytest.raises(
        fg.UsageError, match="cannot render the flow as 'bmp': use one of png, svg, pdf, dot"
    ):
        flow.render(format="bmp")
    (tmp_path / "file").write_text("")
    with pytest.raises(fg.UsageError, match="cannot write .*; choose a path you can write to"):
        flow.render(str(tmp_path / "file" / "flow.svg"))


def test_rendering_never_changes_the_flow() -> None:
    flow = every_kind()
    flow.validate()
    plan, edges, nodes = flow._compile(), flow.edges, dict(flow.nodes)

    flow.to_dot()
    flow.to_mermaid()
    flow.render(detail="compact")

    assert flow._compile() is plan  # still valid, not rebuilt
    assert flow.edges == edges and dict(flow.nodes) == nodes


def test_a_missing_dot_program_says_how_to_install_graphviz(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import flowgraph as fg
        flow = fg.Flow("f")
        flow.edge(fg.START, fg.ToolStep("a", lambda: 1))
        print(flow.to_dot().splitlines()[0])  # DOT text needs no dot program
        try:
            flow.render("out.png")
        except fg.ConfigurationError as error:
            print(error)
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PATH": str(tmp_path)},
        timeout=60,
        check=True,
    ).stdout

    assert out.splitlines() == [
        "digraph f {",
        (
            "graphviz's `dot` program is not installed: install it with `apt-get install "
            "graphviz` (Debian, Ubuntu), `brew install graphviz` (macOS) or `conda install "
            "graphviz`"
        ),
    ]


def steps_flow() -> fg.Flow:
    counter = {"n": 0}

    def again(ctx: fg.RunContext[dict[str, int]]) -> bool:
        counter["n"] += 1
        return counter["n"] < 3

    flow = fg.Flow("steps")
    flow.edge(fg.START, fg.ToolStep("a", lambda: 1))
    flow.edge("a", "a", when=again)
    flow.edge("a", fg.ToolStep("b", lambda: 2))
    flow.edge("b", fg.END)
    flow.add(fg.ToolStep("c", lambda: 3))
    flow.edge("a", "c", when=lambda ctx: False)
    flow.edge("c", fg.END)
    return flow


def test_the_run_is_drawn_over_the_graph(tmp_path: Path) -> None:
    result = steps_flow().run("go")
    assert result.path == ["a", "a", "a", "b"]

    dot = result.render(str(tmp_path / "run.svg")).source

    assert "label=<run " in dot and ": completed>" in dot
    assert 'a -> a [label=<if again()<br/><b>→ 2, 3 (2×)</b>> color="#dc2626"' in dot
    assert "a -> b [label=<otherwise<br/><b>→ 4</b>>" in dot
    assert "b -> END [label=<<b>→ end</b>>" in dot
    assert 'a -> c [label=<if False> color="#15803d"' in dot  # not taken: plain
    assert "step 1, 2, 3 · " in dot
    ET.fromstring((tmp_path / "run.svg").read_text())
    assert result._repr_svg_().lstrip().startswith("<?xml")


def test_a_failed_run_marks_where_it_stopped() -> None:
    def explode() -> str:
        raise ValueError("boom")

    flow = fg.Flow("failing")
    flow.edge(fg.START, fg.ToolStep("ok", lambda: 1))
    flow.edge("ok", fg.ToolStep("explode", explode))
    with pytest.raises(fg.RunError) as caught:
        flow.run("go")
    assert caught.value.result is not None

    dot = caught.value.result.render().source

    assert ": failed>" in dot
    assert 'explode [label=<<b>explode</b><br/><font point-size="10">explode()</font><br/>' in dot
    assert 'fillcolor="#fecaca"' in dot.split("explode [")[1].split("\n")[0]
    assert "ok -> explode [label=<<b>→ 2</b>>" in dot
    mermaid = caught.value.result.to_mermaid()
    assert "style n_explode stroke:#991b1b,stroke-width:3px,fill:#fecaca" in mermaid


def test_sub_flow_steps_are_drawn_inside_their_cluster() -> None:
    inner = fg.Flow("inner")
    inner.edge(fg.START, fg.ToolStep("deep", lambda: 1))
    inner.edge("deep", fg.END)
    outer = fg.Flow("outer")
    outer.edge(fg.START, inner)
    outer.edge(inner, fg.END)

    dot = outer.run("go").render().source

    assert '"inner/START" -> "inner/deep" [label=<<b>→ 1.1</b>>' in dot
    assert '"inner/deep" -> "inner/END" [label=<<b>→ end</b>>' in dot
    assert 'START -> "inner/START" [label=<<b>→ 1</b>>' in dot


def test_a_format_without_a_path_is_the_graphs_format() -> None:
    assert every_kind().render(format="SVG").format == "svg"
    assert every_kind().render().format == "pdf"  # graphviz's own default, untouched


def test_a_sub_flow_agent_without_a_model_is_labelled_with_the_one_it_runs_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("FLOWGRAPH_MODEL", "gpt-house")
    inner = fg.Flow("inner")
    inner.edge(fg.START, fg.Agent("helper"))
    own = fg.Flow("own", model=fg.OpenAIModel("gpt-4.1-nano"))
    own.edge(fg.START, fg.Agent("nano"))
    middle = fg.Flow("middle")
    middle.edge(fg.START, inner)
    middle.edge(inner, own)
    outer = fg.Flow("outer", model=MODEL)
    outer.edge(fg.START, middle)

    dot = outer.to_dot()

    assert (
        '"middle/inner/helper" [label=<<b>helper</b><br/><font point-size="10">gpt-4.1-mini' in dot
    )
    assert '"middle/own/nano" [label=<<b>nano</b><br/><font point-size="10">gpt-4.1-nano' in dot
    assert "(default)" not in dot
    # On its own, it has none to inherit: the default, as this process resolves it.
    assert '<font point-size="10">gpt-house (default)</font>' in middle.to_dot()


def test_a_sub_flow_agent_runs_on_the_model_its_label_names(serve: Serve) -> None:
    server, model = serve(["done"])
    inner = fg.Flow("inner")
    inner.edge(fg.START, fg.Agent("helper"))
    outer = fg.Flow("outer", model=model)
    outer.edge(fg.START, inner)

    assert '"inner/helper" [label=<<b>helper</b><br/><font point-size="10">scripted<' in (
        outer.to_dot()
    )
    assert outer.run("go").output == "done"
    assert server.requests[0].body["model"] == "scripted"


def test_an_agent_node_of_a_run_shows_its_requests_and_tokens(serve: Serve) -> None:
    def lookup(order_id: str) -> str:
        """Look up an order."""
        return "shipped"

    server, model = serve([tool_call("lookup", {"order_id": "A-1"}), "It has shipped."])
    flow = fg.Flow("f", model=model)
    flow.edge(fg.START, fg.Agent("clerk", "Help.", tools=[lookup]))
    flow.edge("clerk", fg.END)

    result = flow.run("Where is A-1?")
    dot = result.render().source

    usage = result.usage_by_node["clerk"]
    assert (usage.requests, len(server.requests)) == (2, 2)
    assert usage.total_tokens > 0
    (line,) = [line for line in dot.splitlines() if line.startswith("\tclerk [")]
    assert re.search(
        rf"step 1 · (<1 ms|\d+ ms|[\d.]+ s) · 2 req, {usage.total_tokens} tok</font>", line
    ), line


def test_rendering_a_run_never_changes_the_flow(tmp_path: Path) -> None:
    flow = steps_flow()
    before = flow.to_dot(), flow.to_mermaid()
    result = flow.run("go")
    plan = flow._compile()

    result.render(str(tmp_path / "run.svg"))
    result.render(detail="compact", direction="LR")
    result._repr_svg_()

    assert (flow.to_dot(), flow.to_mermaid()) == before
    assert flow._compile() is plan


WAITING = 'color="#d97706"'  # the amber outline of the node a run waits at


def node_line(dot: str, name: str) -> str:
    (line,) = [line for line in dot.splitlines() if line.startswith(f"\t{name} [")]
    return line


def test_a_waiting_run_marks_the_node_it_waits_at(serve: Serve, tmp_path: Path) -> None:
    def question(ctx: fg.RunContext[dict[str, str]]) -> str:
        return f'Refund <b>{ctx.context["order"]}</b> "now"?\nThe customer asked twice, politely.'

    _, model = serve(["A refund is due."])
    flow = fg.Flow("refunds", model=model)
    flow.edge(fg.START, fg.Agent("clerk", "Decide."))
    flow.edge("clerk", fg.Human("approve", prompt=question))
    flow.edge("approve", fg.END)

    result = flow.run("Refund A-1", context={"order": "A-1", "token": "s3cret"})
    assert result.status == "waiting" and result.waiting is not None
    dot, mermaid = result.render(str(tmp_path / "run.png")).source, result.to_mermaid()

    assert ": waiting>" in dot
    line = node_line(dot, "approve")
    assert WAITING in line and 'style="filled,dashed,bold"' in line and "penwidth=3" in line
    assert (  # escaped, on one line, and cut short at a word
        '<font point-size="10" color="#b45309"><b>waiting: Refund &lt;b&gt;A-1&lt;/b&gt;<br/>'
        "&quot;now&quot;? The customer…</b></font>>"
    ) in line
    assert "clerk -> approve [label=<<b>→ 2</b>>" in dot
    assert WAITING not in node_line(dot, "clerk") and dot.count(WAITING) == 1
    assert (
        'n_approve[\\"approve<br/>waiting: Refund #lt;b#gt;A-1#lt;/b#gt; #quot;now#quot;? '
        'The customer…"\\]'
    ) in mermaid
    assert mermaid.rstrip().endswith(
        "style n_approve stroke:#d97706,stroke-width:3px,stroke-dasharray:6 3"
    )
    assert mermaid.count("style ") == 1
    for text in (dot, mermaid):  # only the prompt: no context, no resume key
        assert "s3cret" not in text and result.waiting.key not in text
    assert (tmp_path / "run.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_an_agent_waiting_for_approval_of_a_tool_call_is_marked(serve: Serve) -> None:
    def issue_refund(order_id: str) -> str:
        """Refund an order."""
        return "refunded"

    _, model = serve([tool_call("issue_refund", {"order_id": "A-1"}), "Done."])
    flow = fg.Flow("refunds", model=model)
    flow.edge(fg.START, fg.Agent("refund", tools=[fg.Tool(issue_refund, requires_approval=True)]))
    flow.edge("refund", fg.END)

    result = flow.run("Refund A-1")
    assert result.waiting is not None and result.waiting.kind == "approval"
    line = node_line(result.render().source, "refund")

    assert WAITING in line and 'style="rounded,filled,dashed,bold"' in line
    assert "waiting: Approve the call<br/>issue_refund({&quot;order_i…</b>" in line
    assert "style n_refund stroke:#d97706" in result.to_mermaid()


def test_a_run_waiting_inside_a_sub_flow_marks_the_sub_flow() -> None:
    inner = fg.Flow("check")
    inner.edge(fg.START, fg.ToolStep("prepare", lambda: 1))
    inner.edge("prepare", fg.Human("ok", prompt="OK?"))
    inner.edge("ok", fg.END)
    outer = fg.Flow("outer")
    outer.edge(fg.START, inner)
    outer.edge(inner, fg.END)

    result = outer.run("go")
    dot = result.render().source

    (cluster,) = [line for line in dot.splitlines() if "· sub-flow" in line]
    assert WAITING in cluster and 'style="rounded,dashed,bold"' in cluster
    assert "<b>waiting: OK?</b>" in cluster
    assert dot.count(WAITING) == 1  # the sub-flow, not its node inside
    mermaid = result.to_mermaid()
    assert 'subgraph n_check ["check · sub-flow<br/>waiting: OK?"]' in mermaid
    assert "style n_check stroke:#d97706" in mermaid
    compact = result.render(detail="compact").source
    assert WAITING in node_line(compact, "check") and "waiting: OK?" in compact
    assert 'n_check[/"check<br/>waiting: OK?"/]' in result.to_mermaid(detail="compact")


def test_a_completed_run_has_no_stop_to_mark() -> None:
    result = steps_flow().run("go")

    assert WAITING not in result.render().source
    assert result.to_mermaid() == steps_flow().to_mermaid()


# Issue 16, item 10: texts that broke or hijacked the picture.
BROKEN_TEXT = "bad\x00nul\x07bell\ud800surrogate\x1b[31m"


def test_a_flow_name_in_angle_brackets_cannot_inject_dot() -> None:
    flow = fg.Flow('<a>> { injected [label="pwned"] } <b>')
    flow.edge(fg.START, fg.ToolStep("work", lambda: 1))

    svg = flow.render().pipe(format="svg").decode()

    assert "pwned" not in svg.replace("&quot;pwned&quot;", "")  # only inside the title text
    assert 'id="node1"' in svg and ">work<" in svg  # the flow's own nodes are drawn
    assert flow.to_dot().split("\n")[0].startswith('digraph "<a>> {')  # quoted, as text


def test_control_characters_and_lone_surrogates_are_drawn_cleaned(tmp_path: Path) -> None:
    def check(ctx: fg.RunContext[Any]) -> bool:
        return True

    check.__name__ = BROKEN_TEXT
    flow = fg.Flow(BROKEN_TEXT)
    flow.edge(fg.START, fg.ToolStep("work", lambda: 1), when=check)
    flow.edge("work", fg.END, when=BROKEN_TEXT)

    flow.render(str(tmp_path / "flow.png"))
    svg = flow.render().pipe(format="svg").decode()
    assert "bad nul bell\ufffdsurrogate [31m" in svg.replace("&#160;", " ")
    assert "\x00" not in flow.to_mermaid() and "\ud800" not in flow.to_mermaid()


def test_a_live_picture_that_cannot_be_drawn_never_fails_the_run(serve: Serve) -> None:
    _, model = serve([BROKEN_TEXT])
    flow = fg.Flow("live", model=model)
    flow.edge(fg.START, fg.Agent("echo", "Echo."))
    pictures: list[str] = []

    result = flow.run("go", live=pictures.append)

    assert result.status == "completed" and result.output == BROKEN_TEXT
    assert pictures and pictures[-1].startswith("<?xml")
