"""The README's "A flow in 20 lines" runs as written, on the scripted server."""

from __future__ import annotations

import ast
import builtins
import re
import types
from pathlib import Path
from typing import Any

import pytest

import flowgraph as fg
from flowgraph.testing import ScriptedServer, ScriptItem, tool_call

README = Path(__file__).parent.parent / "README.md"


def readme_block(heading: str) -> str:
    """The first Python block under ``heading`` in the README."""
    section = README.read_text().split(f"\n{heading}\n", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, f"no Python block under {heading!r}"
    return found.group(1)


def exec_with_model(code: str, server: ScriptedServer) -> dict[str, Any]:
    """Run ``code`` as written, except that its ``import flowgraph as fg`` gets a copy
    of flowgraph whose ``OpenAIModel(name)`` talks to ``server`` (under that name)."""
    scripted = types.ModuleType("flowgraph")
    scripted.__dict__.update(vars(fg))
    scripted.__dict__["OpenAIModel"] = lambda name, **settings: server.model(name, max_retries=0)

    def importer(name: str, *args: Any, **kwargs: Any) -> Any:
        return scripted if name == "flowgraph" else builtins.__import__(name, *args, **kwargs)

    namespace: dict[str, Any] = {
        "__name__": "readme",
        "__builtins__": {**vars(builtins), "__import__": importer},
    }
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_the_flow_in_20_lines_prints_what_its_comment_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = readme_block("## A flow in 20 lines")
    comment = code.rstrip().splitlines()[-1].split("  # ", 1)[1]
    path_text, output_text = comment.split("] ", 1)
    expected_path, expected_output = (
        ast.literal_eval(path_text + "]"),
        ast.literal_eval(output_text),
    )
    script: list[ScriptItem] = [
        tool_call("transfer_to_refund"),
        tool_call("issue_refund", {"order_id": "A-1"}),
        "Your refund is on its way.",
    ]

    with ScriptedServer(script) as server:
        namespace = exec_with_model(code, server)

    assert capsys.readouterr().out == f"{expected_path} {expected_output}\n"
    result = namespace["result"]
    assert (result.path, result.output) == (expected_path, expected_output)
    assert result.context == {"vip": True, "refunded": "A-1"}
    triage, refund, answer = server.requests
    assert triage.body["model"] == "gpt-4.1-mini"  # the README's model line, on our server
    assert triage.tool_names == ["lookup_order", "transfer_to_refund"]
    assert refund.system == "Refund desk. VIP=True"
    assert answer.messages[-1]["content"] == "refunded"


def test_the_custom_model_of_the_models_section_runs_as_written() -> None:
    section = README.read_text().split("\n## Models\n", 1)[1].split("\n## ", 1)[0]
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", section, re.DOTALL) if "class " in b]
    namespace: dict[str, Any] = {"fg": fg}
    exec(compile(code, str(README), "exec"), namespace)
    flow = namespace["flow"]
    flow.edge(fg.START, fg.Agent("parrot"))
    flow.edge("parrot", fg.END)
    assert flow.run("hi").output == "echo: hi"


def test_the_streaming_example_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    code = readme_block("## Streaming: a run as it happens")
    script: list[ScriptItem] = [
        tool_call("transfer_to_refund"),
        tool_call("issue_refund", {"order_id": "A-1"}),
        "Your refund is on its way.",
    ]
    with ScriptedServer(script * 2) as server:  # the 20 lines run the flow once first
        namespace = exec_with_model(readme_block("## A flow in 20 lines"), server)
        capsys.readouterr()
        exec(compile(code, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "[refund] issue_refund(" in out
    assert "Your refund is on its way." in out
    assert namespace["result"].path == ["triage", "refund", "receipt"]
