"""Drawing flows with the real graphviz `dot`, and as Mermaid text."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import flowgraph as fg

MODEL = fg.OpenAIModel("gpt-4.1-mini", base_url="http://127.0.0.1:9/v1", api_key="k")


def lookup_order(order_id: str) -> str:
    """Look up an order."""
    return order_id


def is_vip(ctx: fg.RunContext[dict[str, bool]]) -> bool:
    return ctx.context.get("vip", False)


def support_flow(condition: str = "The customer wants money back.") -> fg.Flow:
    triage = fg.Agent("triage", "Route.", tools=[lookup_order])
    notify = fg.ToolStep("notify", lambda: "sent")
    flow = fg.Flow("support", model=MODEL)
    flow.edge(fg.START, triage)
    flow.edge(triage, fg.Agent("refund"), when=condition)
    flow.edge(triage, notify, when=is_vip)
    flow.edge(triage, fg.END)
    flow.edge("refund", notify)
    flow.edge(notify, fg.END)
    return flow


def test_dot_shows_node_kinds_and_edge_kinds() -> None:
    dot = support_flow().to_dot()

    assert "triage [label=<<b>triage</b><br/>" in dot
    assert "gpt-4.1-mini" in dot and "tools: lookup_order" in dot
    assert "shape=component" in dot  # the tool step
    assert "START -> triage" in dot
    assert (
        'triage -> refund [label=<The customer wants money<br/>back.> color="#1d4ed8" '
        'fontcolor="#1d4ed8" style=dashed]'
    ) in dot
    assert "triage -> notify [label=<if is_vip()>" in dot
    assert "triage -> END [label=<otherwise>" in dot


def test_hostile_labels_are_escaped() -> None:
    hostile = 'He said "hi" <b>bold</b> & then }; evil -> x [label="pwned"]\\N'
    dot = support_flow(hostile).to_dot()

    assert 'pwned"]' not in dot
    assert "&quot;hi&quot; &lt;b&gt;bold&lt;/b&gt; &amp;" in dot
    svg = support_flow(hostile).render().pipe(format="svg").decode()
    ET.fromstring(svg)  # still a well-formed picture
    assert "&lt;b&gt;bold&lt;/b&gt;" in svg


def test_render_writes_png_and_svg(tmp_path: Path) -> None:
    flow = support_flow()
    flow.render(str(tmp_path / "flow.png"))
    flow.render(str(tmp_path / "flow.svg"))

    assert (tmp_path / "flow.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    root = ET.fromstring((tmp_path / "flow.svg").read_text())
    assert root.tag.endswith("svg")


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        fg.UsageError, match="cannot render .* as 'bmp': use one of png, svg, pdf, dot"
    ):
        support_flow().render(str(tmp_path / "flow.bmp"))


def test_the_run_is_drawn_over_the_graph(tmp_path: Path) -> None:
    flow = fg.Flow("steps")
    flow.edge(fg.START, fg.ToolStep("a", lambda: 1))
    flow.edge("a", fg.ToolStep("b", lambda: 2), when=lambda ctx: True)
    flow.edge("a", fg.ToolStep("c", lambda: 3))
    flow.edge("b", fg.END)
    flow.edge("c", fg.END)
    result = flow.run("go")

    dot = result.render(str(tmp_path / "run.svg")).source

    assert "a -> b [label=<if &lt;lambda&gt;()<br/><b>taken 1×</b>>" in dot
    assert 'a -> c [label=<otherwise> color="#6b7280"' in dot  # not taken: plain
    assert "step 1" in dot and "step 2" in dot
    ET.fromstring((tmp_path / "run.svg").read_text())


def test_mermaid_text() -> None:
    text = support_flow('Say "refund" <now>').to_mermaid()

    assert text.startswith("flowchart TD\n")
    assert '    n_triage -.->|"Say #quot;refund#quot; #lt;now#gt;"| n_refund' in text
    assert '    n_triage -->|"if is_vip()"| n_notify' in text
    assert "    n_notify --> n_END" in text
    assert '    n_notify[["notify"]]' in text
