"""Retries and timeouts: model requests, tools, tool steps, the run's deadline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import flowgraph as fg
from flowgraph.testing import (
    delay,
    drop,
    error,
    malformed,
    rate_limited,
    tool_call,
    truncated,
)

from .conftest import Serve

QUICK = fg.Retry(attempts=3, backoff=0.01, jitter=0)


def one_agent(model: fg.Model, *tools: Any, **flow_options: Any) -> fg.Flow:
    agent = fg.Agent("helper", "Help.", tools=list(tools))
    flow = fg.Flow("help", model=model, **flow_options)
    flow.edge(fg.START, agent)
    flow.edge(agent, fg.END)
    return flow


@pytest.mark.parametrize(
    "fault",
    [error(500), error(503), error(408), drop(), truncated(after=1), delay(1.0, then="late")],
    ids=["500", "503", "408", "drop", "truncated", "timeout"],
)
def test_a_transient_fault_is_retried(serve: Serve, fault: Any) -> None:
    server, model = serve([fault, "recovered"])

    result = one_agent(model, retry=QUICK, request_timeout=0.3).run("hi")

    assert result.output == "recovered"
    assert len(server.requests) == 2
    assert result.usage.requests == 1


def test_a_rate_limit_waits_for_retry_after(serve: Serve) -> None:
    server, model = serve([rate_limited(retry_after=0.4), "recovered"])
    started = time.monotonic()

    result = one_agent(model, retry=QUICK).run("hi")

    assert result.output == "recovered"
    assert time.monotonic() - started >= 0.4
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("fault", "kind"),
    [(malformed(), "JSONDecodeError"), (error(400, "bad request"), "BadRequestError")],
)
def test_a_fault_that_will_not_pass_is_not_retried(serve: Serve, fault: Any, kind: str) -> None:
    server, model = serve([fault, "never sent"])

    with pytest.raises(fg.ModelError, match=f"node 'helper' failed .*{kind}"):
        one_agent(model, retry=QUICK).run("hi")
    assert len(server.requests) == 1


def test_the_last_attempt_fails_the_run_and_resume_goes_on(serve: Serve, tmp_path: Path) -> None:
    server, model = serve([error(502), error(502), error(502)])
    flow = one_agent(model, retry=QUICK)
    store = tmp_path / "runs.db"

    with pytest.raises(fg.ModelError, match="InternalServerError|APIStatusError") as caught:
        flow.run("hi", run_id="flaky", store=store)
    assert len(server.requests) == 3
    assert caught.value.result is not None
    assert caught.value.result.status == "failed"
    assert flow.runs(store)[0].status == "failed"

    server.add("finally")
    assert flow.resume("flaky", store=store).output == "finally"


def test_an_agent_policy_overrides_the_flows(serve: Serve) -> None:
    server, model = serve([error(500), error(500), "third time"])
    agent = fg.Agent("helper", retry=fg.Retry(attempts=3, backoff=0, jitter=0))
    flow = fg.Flow("help", model=model, retry=fg.Retry(attempts=1))
    flow.edge(fg.START, agent)
    flow.edge(agent, fg.END)

    assert flow.run("hi").output == "third time"
    assert len(server.requests) == 3


def test_a_deadline_stops_the_run_and_keeps_what_it_committed(serve: Serve, tmp_path: Path) -> None:
    def lookup(order_id: str) -> str:
        """Look up an order."""
        return "shipped"

    _server, model = serve(
        [tool_call("lookup", {"order_id": "A-1"}), delay(2.0, then="slow"), "It has shipped."]
    )
    flow = one_agent(model, lookup)
    store = tmp_path / "runs.db"
    started = time.monotonic()

    with pytest.raises(fg.DeadlineExceeded, match="passed its deadline at node 'helper'"):
        flow.run("where is A-1?", run_id="late", store=store, deadline=0.5)

    assert time.monotonic() - started < 1.5
    result = flow.resume("late", store=store)
    assert result.output == "It has shipped."
    assert [m["role"] for m in result.messages] == ["user", "assistant", "tool", "assistant"]


def test_a_tool_is_retried_on_the_errors_it_names(serve: Serve) -> None:
    tries: list[int] = []

    def fetch(url: str) -> str:
        """Fetch a page."""
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError("reset by peer")
        return "the page"

    tool = fg.Tool(fetch, retry=fg.Retry(attempts=3, backoff=0, on=(ConnectionError,)))
    _, model = serve([tool_call("fetch", {"url": "x"}), "ok"])

    result = one_agent(model, tool).run("fetch x")

    assert len(tries) == 3
    assert result.messages[2]["content"] == "the page"


def test_a_tool_that_overruns_its_timeout_is_answered_as_such(serve: Serve) -> None:
    async def slow(query: str) -> str:
        """Search slowly."""
        await asyncio.sleep(5)
        return "never"

    _, model = serve([tool_call("slow", {"query": "x"}), "gave up"])

    result = one_agent(model, fg.Tool(slow, timeout=0.1)).run("search")

    assert result.messages[2]["content"] == (
        "Error: tool 'slow' raised ToolTimeout: the call did not finish within 0.1 s"
    )
    assert result.output == "gave up"


def test_a_tool_step_retries_then_fails_naming_itself() -> None:
    tries: list[int] = []

    def flaky() -> str:
        tries.append(1)
        raise ConnectionError("down")

    step = fg.ToolStep("sync", flaky, retry=fg.Retry(attempts=2, backoff=0, on=(ConnectionError,)))
    flow = fg.Flow("steps")
    flow.edge(fg.START, step)
    flow.edge(step, fg.END)

    with pytest.raises(fg.RunError, match="tool 'sync' raised ConnectionError: down"):
        flow.run("go")
    assert len(tries) == 2


def test_a_tool_step_timeout_fails_the_run() -> None:
    async def hang() -> None:
        await asyncio.sleep(5)

    step = fg.ToolStep("hang", hang, timeout=0.1)
    flow = fg.Flow("steps")
    flow.edge(fg.START, step)
    flow.edge(step, fg.END)

    with pytest.raises(fg.RunError, match=r"tool step 'hang' did not finish within 0.1 s"):
        flow.run("go")


def test_retry_policy_waits_grow_and_honour_retry_after() -> None:
    policy = fg.Retry(attempts=5, backoff=1.0, max_backoff=3.0, jitter=0)

    assert [policy.wait(n) for n in (1, 2, 3)] == [1.0, 2.0, 3.0]
    assert policy.wait(1, retry_after=2.5) == 2.5
    with pytest.raises(ValueError, match="at least 1 attempt"):
        fg.Retry(attempts=0)


# Issue 16, item 7: a deadline bounds whatever the run waits on, not only requests.
def _hangs(seconds: float = 30.0) -> None:
    time.sleep(seconds)


async def _hangs_async(*args: object) -> bool:
    await asyncio.sleep(30)
    return True


@pytest.mark.parametrize("where", ["tool", "async tool", "predicate", "hook", "observer"])
def test_a_deadline_stops_a_run_waiting_on_user_code(
    where: str, serve: Serve, tmp_path: Path
) -> None:
    def lookup(order_id: str) -> str:
        """Look up an order."""
        _hangs()
        return "shipped"

    async def lookup_async(order_id: str) -> str:
        """Look up an order."""
        await asyncio.sleep(30)
        return "shipped"

    tool = lookup_async if where == "async tool" else lookup
    script = [tool_call(tool.__name__, {"order_id": "A-1"}), "It has shipped."]
    if where not in ("tool", "async tool"):
        script = ["Hello."]
    _, model = serve(script)
    flow = fg.Flow("bounded", model=model)
    agent = fg.Agent("helper", "Help.", tools=[tool] if "tool" in where else [])
    flow.edge(fg.START, fg.ToolStep("first", lambda: "ok"))
    flow.edge("first", agent)
    if where == "predicate":
        flow.edge(agent, fg.END, when=lambda ctx: _hangs() or True)
    else:
        flow.edge(agent, fg.END)
    if where == "hook":
        agent.after_completion(lambda hook: _hangs_async())
    if where == "observer":
        flow.on("node_exit", _hangs_async)
    store = tmp_path / "runs.db"
    started = time.monotonic()

    with pytest.raises(fg.DeadlineExceeded, match="passed its deadline") as caught:
        flow.run("where is A-1?", run_id="late", store=store, deadline=1.0)

    assert time.monotonic() - started < 5  # not the 30 s it waits on
    assert caught.value.result is not None and caught.value.result.status == "failed"
    [info] = flow.runs(store)
    assert info.status == "failed" and "deadline" in info.reason
    assert ["first", "helper"][: len(info.path)] == info.path  # what was committed is kept
