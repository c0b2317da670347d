"""Running: results, errors that keep the state, the sync bridge, Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

import flowgraph as fg
from flowgraph.testing import error, tool_call

from .conftest import Serve, interruptible


def lookup_order(order_id: str) -> str:
    """Look up an order."""
    return f"{order_id}: shipped"


def agent_flow(model: fg.Model) -> fg.Flow:
    triage = fg.Agent("triage", tools=[lookup_order])
    flow = fg.Flow("support", model=model)
    flow.edge(fg.START, triage)
    flow.edge(triage, fg.END)
    return flow


def test_a_server_error_raises_model_error_with_the_state_so_far(serve: Serve) -> None:
    _, model = serve([tool_call("lookup_order", {"order_id": "A-1"}), error(500, "boom")])

    with pytest.raises(
        fg.ModelError,
        match=r"the model request of node 'triage' failed "
        r"\(scripted\): InternalServerError",
    ) as caught:
        agent_flow(model).run("where is A-1?", context={"customer": "ada"})

    failure = caught.value
    assert (failure.node, failure.step) == ("triage", 1)
    assert failure.result is not None
    assert failure.result.status == "failed"
    assert failure.result.path == ["triage"]
    assert failure.result.context == {"customer": "ada"}
    assert [m["role"] for m in failure.result.messages] == ["user", "assistant", "tool"]
    assert failure.result.messages[2]["content"] == "A-1: shipped"
    assert failure.run_id == failure.result.run_id
    assert failure.__cause__ is not None


def test_the_clients_retries_absorb_a_passing_server_error(serve: Serve) -> None:
    server, _ = serve([error(500, "flaky"), "recovered"])
    model = fg.OpenAIModel("scripted", base_url=server.url, api_key="k", max_retries=1)

    assert agent_flow(model).run("hi").output == "recovered"
    assert len(server.requests) == 2


def test_a_tool_step_that_raises_fails_the_run_and_keeps_what_was_done() -> None:
    def charge(ctx: fg.RunContext[dict[str, int]]) -> str:
        raise RuntimeError("card declined")

    flow = fg.Flow("pay")
    flow.edge(fg.START, fg.ToolStep("prepare", lambda ctx: "prepared"))
    flow.edge("prepare", fg.ToolStep("charge", charge))

    with pytest.raises(
        fg.RunError, match="tool 'charge' raised RuntimeError: card declined"
    ) as caught:
        flow.run("pay", run_id="run-1")
    assert caught.value.result is not None
    assert caught.value.result.path == ["prepare", "charge"]
    assert caught.value.result.messages[-1]["content"] == "prepared"
    assert caught.value.run_id == "run-1"
    assert isinstance(caught.value.__cause__, RuntimeError)


class Account(BaseModel):
    vip: bool = False
    refunded: list[str] = []


def test_a_pydantic_context_is_shared_by_steps_and_predicates() -> None:
    def refund(ctx: fg.RunContext[Account]) -> str:
        ctx.context.refunded.append("A-1")
        return "refunded"

    flow = fg.Flow("typed")
    flow.edge(fg.START, fg.ToolStep("refund", refund))
    flow.edge(
        "refund", fg.ToolStep("thank_vip", lambda: "thanks"), when=lambda ctx: ctx.context.vip
    )
    account = Account(vip=True)

    result = flow.run("refund", context=account)

    assert result.context is account
    assert account.refunded == ["A-1"]
    assert result.path == ["refund", "thank_vip"]
    assert result.output == "thanks"


def test_input_can_be_a_list_of_messages_and_usage_is_summed(serve: Serve) -> None:
    server, model = serve([tool_call("lookup_order", {"order_id": "A-1"}), "ok"])
    history = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "where is A-1?"},
    ]

    result = agent_flow(model).run(history)

    assert server.requests[0].messages == history
    assert result.usage.requests == 2
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert result.usage == result.usage_by_node["triage"]
    assert result.trace[0].usage == result.usage


def test_run_works_inside_a_running_event_loop_as_in_jupyter() -> None:
    flow = fg.Flow("nested")
    flow.edge(fg.START, fg.ToolStep("work", lambda: "done"))

    async def notebook_cell() -> str:
        return str(flow.run("go").output)  # a sync call while this loop is running

    # Outside IPython it works too, and warns that it blocks the loop (test_silent.py).
    with pytest.warns(RuntimeWarning, match="blocks until the run ends"):
        assert asyncio.run(notebook_cell()) == "done"


def test_arun_is_the_async_core() -> None:
    async def work() -> str:
        await asyncio.sleep(0)
        return "async done"

    flow = fg.Flow("async")
    flow.edge(fg.START, fg.ToolStep("work", work))

    assert asyncio.run(flow.arun("go")).output == "async done"


def test_a_sync_hook_may_call_run_but_async_code_must_await_arun() -> None:
    inner = fg.Flow("inner")
    inner.edge(fg.START, fg.ToolStep("inner_step", lambda: "inner result"))
    outer = fg.Flow("outer")
    outer.edge(fg.START, fg.ToolStep("outer_step", lambda: "outer"))
    outer.after_completion(lambda hook: hook.context.update(inner=inner.run("x").output))

    assert outer.run("go").context == {"inner": "inner result"}

    async def misuse() -> str:
        return str(inner.run("x").output)

    bad = fg.Flow("bad")
    bad.edge(fg.START, fg.ToolStep("calls_run", misuse))
    with pytest.raises(fg.UsageError, match=r"use `await flow.arun\(...\)` there instead"):
        bad.run("go")


CTRL_C_SCRIPT = """
import asyncio, flowgraph as fg

async def slow(ctx):
    print("started", flush=True)
    try:
        await asyncio.sleep(60)
    finally:
        await asyncio.sleep(0.1)          # cleanup that needs the loop
        print("cleaned up", flush=True)

flow = fg.Flow("slow")
flow.edge(fg.START, fg.ToolStep("slow", slow))
try:
    flow.run("go")
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


@pytest.mark.parametrize("how", ["run", "stream"])
def test_ctrl_c_cancels_the_run_and_waits_for_its_cleanup(tmp_path: Path, how: str) -> None:
    """Issue 18, item 3: Ctrl-C while iterating flow.stream() cancels the run as it
    does flow.run()."""
    script = tmp_path / "slow.py"
    source = textwrap.dedent(CTRL_C_SCRIPT)
    if how == "stream":
        source = source.replace(
            '    flow.run("go")', '    for event in flow.stream("go"):\n        pass'
        )
    script.write_text(source)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=interruptible,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "started"
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)

    assert out.split() == ["cleaned", "up", "interrupted"]
    assert process.returncode == 0
    assert time.monotonic() - started < 10


SYS_EXIT_SCRIPT = """
import sys
import flowgraph as fg

def leave(ctx):
    sys.exit(3)

async def leave_async(ctx):
    sys.exit(4)

for step in (leave, leave_async):
    flow = fg.Flow("leaves")
    flow.edge(fg.START, fg.ToolStep("leave", step))
    flow.edge("leave", fg.END)
    try:
        flow.run("go")
    except SystemExit as exc:
        print("exit", exc.code)
calm = fg.Flow("calm")
calm.edge(fg.START, fg.ToolStep("done", lambda ctx: "done"))
calm.edge("done", fg.END)
print(calm.run("go").output)
"""


def test_a_step_that_calls_sys_exit_ends_run_with_system_exit() -> None:
    """SystemExit from a step (sync, in a worker thread, or async, on the loop) reaches
    the caller of run() instead of stopping the loop it runs on (which left run()
    waiting forever), and later runs work. In a process of its own: a hang fails."""
    done = subprocess.run(
        [sys.executable, "-c", SYS_EXIT_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["exit 3", "exit 4", "done"]


def test_a_broken_history_is_caught_before_it_is_sent(serve: Serve) -> None:
    server, model = serve(["never sent"])
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": "{}"},
                }
            ],
        },
        {"role": "user", "content": "and?"},
    ]

    with pytest.raises(
        fg.RunError,
        match=r"node 'triage' would send a broken conversation: "
        r"message 2 \(user\) comes before the tool calls \['call_1'\] were "
        "answered",
    ):
        agent_flow(model).run(history)
    assert server.requests == []


def test_a_failing_inner_flow_fails_the_outer_run_keeping_both_states() -> None:
    def explode() -> str:
        raise ValueError("inner boom")

    inner = fg.Flow("inner")
    inner.edge(fg.START, fg.ToolStep("explode", explode))

    async def delegate() -> str:
        return str((await inner.arun("x")).output)

    outer = fg.Flow("outer")
    outer.edge(fg.START, fg.ToolStep("prepare", lambda: "prepared"))
    outer.edge("prepare", fg.ToolStep("delegate", delegate))

    with pytest.raises(
        fg.RunError,
        match="tool 'delegate' raised RunError: tool 'explode' raised ValueError: inner boom",
    ) as caught:
        outer.run("go")
    assert caught.value.result is not None
    assert caught.value.result.path == ["prepare", "delegate"]
    inner_error = caught.value.__cause__
    assert isinstance(inner_error, fg.RunError)
    assert inner_error.result is not None
    assert inner_error.result.path == ["explode"]


def test_a_long_runs_result_prints_as_one_short_line() -> None:
    """asyncio.run formats the result it returns (Python 3.11): a repr of the whole
    conversation and trace would cost more than the run."""

    def say(ctx: fg.RunContext) -> str:
        ctx.context["n"] += 1
        return "x" * 200

    flow = fg.Flow("chain", max_steps=500)
    flow.edge(fg.START, fg.ToolStep("say", say))
    flow.edge("say", fg.END, when=lambda ctx: ctx.context["n"] >= 300)
    flow.edge("say", "say")
    result = flow.run("go", context={"n": 0})

    assert result.steps == 300
    assert repr(result) == str(result)
    assert repr(result).startswith("RunResult(status='completed', steps=300, path=['say', ")
    assert len(repr(result)) < 300
