"""Watching a run: run-scoped hooks, and the live picture redrawn as the run goes."""

from __future__ import annotations

import asyncio

import pytest

import flowgraph as fg


async def slow_step() -> str:
    await asyncio.sleep(0.4)  # long enough for a frame to show this node running
    return "done"


def two_steps() -> fg.Flow:
    flow = fg.Flow("watched")
    flow.edge(fg.START, fg.ToolStep("first", slow_step))
    flow.edge("first", fg.ToolStep("second", slow_step))
    flow.edge("second", fg.END)
    return flow


def test_live_hands_each_redrawn_picture_to_a_function() -> None:
    frames: list[str] = []

    result = two_steps().run("go", live=frames.append)

    assert len(frames) >= 3  # the empty flow, frames while running, the finished run
    assert frames[0].lstrip().startswith("<?xml") and "watched: running" in frames[0]
    running = [frame for frame in frames if 'fill="#fde68a"' in frame]  # the active node
    assert running, "no frame showed a node running"
    assert "→ end" in frames[-1] and "watched: running" not in frames[-1]
    assert frames[-1] == result._repr_svg_()


def test_live_shows_where_a_failed_run_stopped() -> None:
    def explode() -> str:
        raise ValueError("boom")

    frames: list[str] = []
    flow = fg.Flow("failing")
    flow.edge(fg.START, fg.ToolStep("explode", explode))

    with pytest.raises(fg.RunError):
        flow.run("go", live=frames.append)
    assert ": failed" in frames[-1]
    assert 'fill="#fecaca"' in frames[-1]


def test_live_outside_jupyter_prints_a_line_per_step(capsys: pytest.CaptureFixture[str]) -> None:
    two_steps().run("go", live=True)

    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "step 1: first ..."
    assert lines[1].startswith("step 1: first done in ")
    assert lines[2] == "step 2: second ..."
    assert lines[-1] == "completed: reached END"


class Steps(fg.Hooks):
    def __init__(self) -> None:
        self.nodes: list[str] = []

    async def on_node_exit(self, event: fg.NodeEvent) -> None:
        self.nodes.append(f"{event.node}:{event.output}")


def test_hooks_for_one_run_leave_the_flow_unchanged() -> None:
    flow = two_steps()
    watcher = Steps()

    flow.run("go", hooks=watcher)
    flow.run("go")

    assert watcher.nodes == ["first:done", "second:done"]  # the second run was not seen
    assert flow.hooks.observers == {}


def test_a_live_picture_shows_the_answer_as_the_model_writes_it() -> None:
    """Issue 18: the live view moved only at node boundaries."""
    from flowgraph.testing import ScriptedServer

    answer = "Your refund for the broken kettle is on its way to you today"
    frames: list[str] = []
    with ScriptedServer([answer], stream_delay=0.35) as server:
        flow = fg.Flow("talky", model=server.model())
        flow.edge(fg.START, fg.Agent("clerk", "Help."))
        flow.edge("clerk", fg.END)
        flow.run("Where is my refund?", live=frames.append)

    partial = [f for f in frames if "Your refund" in f and "today" not in f]
    assert partial, "no frame showed the answer half written"
    assert "<text" in partial[0] and 'font-style="italic"' in partial[0]
