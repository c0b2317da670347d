"""The error contract: everything flowgraph raises at a user is an `fg.FlowgraphError`
(misuse may also be the `ValueError` or `TypeError` a Python user would catch), its
message names what is wrong, and it shows as `flowgraph.X` in a traceback.

This walks the public API with bad arguments, each where a user would write it."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import flowgraph as fg
from flowgraph.testing import Reply, ScriptedServer, delay, error, truncated
from tests.conftest import Serve

MODEL = fg.OpenAIModel("m", base_url="http://127.0.0.1:9/v1", api_key="test")


def agent(**options: Any) -> fg.Agent:
    return fg.Agent("a", "Answer.", **options)


def flow(**options: Any) -> fg.Flow:
    built = fg.Flow("f", model=MODEL, **options)
    node = agent()
    built.edge(fg.START, node)
    built.edge(node, fg.END)
    return built


def on_typo() -> None:
    fg.Flow("f").on("node_start", lambda event: None)  # type: ignore[call-overload]


def edge_to_nobody() -> None:
    built = fg.Flow("f", model=MODEL)
    built.edge(fg.START, "nobody")
    built.validate()


def not_a_schema() -> None:
    class Box:  # no JSON schema for it
        pass

    def ship(order: Box) -> str:
        return str(order)

    fg.Tool(ship).openai_schema()


# (what the user wrote, the error it raises, the words that name the fix)
DECLARING: list[tuple[Callable[[], object], type[Exception], str]] = [
    (lambda: fg.Flow(""), fg.FlowValidationError, "a flow's name must be non-empty text"),
    (lambda: fg.Flow("f", max_steps=0), ValueError, "flow 'f': max_steps must be at least 1"),
    (lambda: fg.Flow("f", max_steps="9"), ValueError, "max_steps must be at least 1"),  # type: ignore[arg-type]
    (lambda: fg.Flow("f", deadline=-1), ValueError, "flow 'f': deadline must be more than 0"),
    (lambda: fg.Flow("f", request_timeout="x"), ValueError, "a number of seconds"),  # type: ignore[arg-type]
    (lambda: fg.Flow("f", retry=3), ValueError, "flow 'f': retry is 3, not a Retry"),  # type: ignore[arg-type]
    (lambda: fg.Flow("f", model="gpt-4o"), ValueError, r"pass fg.OpenAIModel\('gpt-4o'\)"),  # type: ignore[arg-type]
    (lambda: agent(max_turns=0), ValueError, "agent 'a': max_turns must be at least 1"),
    (lambda: agent(tools="lookup"), ValueError, "agent 'a': tools= takes a list of functions"),
    (lambda: agent(tools=[3]), ValueError, "a tool is a Python function"),
    (lambda: agent(model=3), ValueError, "agent 'a': model=3 is not a model"),
    (lambda: agent(request_timeout=0), ValueError, "request_timeout must be more than 0"),
    (lambda: fg.Agent("a", 3), ValueError, "instructions of agent .a. must be text or a function"),  # type: ignore[arg-type]
    (lambda: fg.Agent("no spaces"), ValueError, "Agent name 'no spaces' is not allowed"),
    (lambda: fg.ToolStep("t", 3), ValueError, "tool step 't' must be callable"),  # type: ignore[arg-type]
    (lambda: fg.ToolStep("t", print, timeout=-1), ValueError, "'t': timeout must be more"),
    (lambda: fg.Human("h", prompt=3), ValueError, "prompt of human node .h. must be text"),  # type: ignore[arg-type]
    (lambda: fg.NestedChat("n", chats=3), ValueError, "chats= takes a list of fg.Chat"),  # type: ignore[arg-type]
    (lambda: fg.Retry(attempts=0), ValueError, "at least 1 attempt"),
    (lambda: fg.Retry(attempts=2.5), ValueError, r"Retry\(attempts=2.5\): a whole number"),  # type: ignore[arg-type]
    (lambda: fg.Retry(backoff=-1), ValueError, r"Retry\(backoff=...\) must be finite and >= 0"),
    (lambda: fg.Retry(on=("ConnectionError",)), ValueError, "on= takes exception classes"),  # type: ignore[arg-type]
    (lambda: fg.Tool(3), ValueError, "a tool is a Python function"),  # type: ignore[arg-type]
    (lambda: fg.Tool(print, name="no spaces").openai_schema(), ValueError, "is not allowed"),
    (lambda: fg.Tool(lambda x: x).openai_schema(), ValueError, "pass name=... to fg.Tool"),
    (not_a_schema, ValueError, "tool 'ship'"),
    (lambda: fg.Tool(print, timeout="1"), ValueError, "timeout must be a number of seconds"),  # type: ignore[arg-type]
    (lambda: fg.Flow("f").edge(3, fg.END), ValueError, "3 is not a node"),  # type: ignore[arg-type]
    (lambda: fg.Flow("f").edge(fg.START, agent(), when=3), ValueError, "must be callable"),  # type: ignore[arg-type]
    (lambda: fg.Flow("f").add(agent(), agent()), ValueError, "two different nodes named 'a'"),
    (edge_to_nobody, ValueError, "there is no node 'nobody'"),
    (on_typo, ValueError, "unknown event 'node_start': use one of node_enter"),
    (lambda: fg.Flow("f").validate(), ValueError, r"add flow.edge\(fg.START, first_node\)"),
    (lambda: fg.OpenAIModel(3), fg.ConfigurationError, "the model's name as text"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("write", "kind", "fix"), DECLARING)
def test_what_cannot_be_declared_fails_where_it_is_written(
    write: Callable[[], object], kind: type[Exception], fix: str
) -> None:
    with pytest.raises(kind, match=fix) as caught:
        write()
    assert isinstance(caught.value, fg.FlowValidationError | fg.ConfigurationError)


CALLING: list[tuple[Callable[[fg.Flow, Path], object], str]] = [
    (lambda f, tmp: f.run(3), "a run's input is the user's message as text"),  # type: ignore[arg-type]
    (lambda f, tmp: f.run([{"content": "hi"}]), "a list of messages in OpenAI chat format"),
    (lambda f, tmp: f.run("hi", max_steps=0), "max_steps must be at least 1"),
    (lambda f, tmp: f.run("hi", deadline=0), "deadline must be more than 0 seconds"),
    (lambda f, tmp: f.run("hi", hooks=3), "hooks= takes an fg.Hooks object"),  # type: ignore[arg-type]
    (lambda f, tmp: f.run("hi", live="yes"), "live= takes True, False or a function"),  # type: ignore[arg-type]
    (lambda f, tmp: f.run("hi", run_id=7), "run_id must be non-empty text"),  # type: ignore[arg-type]
    (lambda f, tmp: f.run("hi", store=3), "store=3 is not a store"),  # type: ignore[arg-type]
    (lambda f, tmp: f.resume("nope", store=tmp / "r.db"), "there is no run 'nope'"),
    (lambda f, tmp: f.resume("nope"), "there is no run 'nope' in this process"),
    (lambda f, tmp: f.resume("nope", hooks=3), "hooks= takes an fg.Hooks"),  # type: ignore[arg-type]
    (lambda f, tmp: f.fork("nope", step=1, store=tmp / "r.db"), "has no committed step 1"),
    (lambda f, tmp: f.runs(tmp / "r.db", limit=0), r"flow.runs\(limit=...\) must be at least 1"),
    (lambda f, tmp: f.render(str(tmp / "x.jpg2")), "use one of png, svg, pdf, dot"),
    (lambda f, tmp: f.to_dot(direction="up"), "unknown direction 'up'"),
    (lambda f, tmp: f.to_mermaid(detail="all"), "detail in"),
]


@pytest.mark.parametrize(("call", "fix"), CALLING)
def test_a_call_the_api_does_not_support_is_a_usage_error(
    call: Callable[[fg.Flow, Path], object], fix: str, tmp_path: Path
) -> None:
    with pytest.raises(fg.UsageError, match=fix):
        call(flow(), tmp_path)


def test_a_bad_call_loses_no_waiting_run() -> None:
    # resume checks its arguments before it takes the waiting run from memory
    built = fg.Flow("f", model=MODEL)
    ask = fg.Human("ask", prompt="Which floor?")
    built.edge(fg.START, ask)
    built.edge(ask, fg.END)
    paused = built.run("Hi")
    with pytest.raises(fg.UsageError):
        built.resume(paused.run_id, hooks=3)  # type: ignore[arg-type]
    assert built.resume(paused.run_id, reply="5").output == "5"


def test_interrupt_outside_a_run_is_a_usage_error() -> None:
    ctx = fg.RunContext(context={}, messages=[], run_id="r1")
    with pytest.raises(fg.UsageError, match="interrupt"):
        ctx.interrupt("Which floor?")


def test_the_scripted_server_is_part_of_the_contract() -> None:
    for bad, kind in [
        (lambda: ScriptedServer(42), TypeError),
        (lambda: ScriptedServer([42]), TypeError),
        (lambda: delay(-1, "hi"), ValueError),
        (lambda: truncated(-1), ValueError),
        (lambda: error(200), ValueError),
        (lambda: Reply(tool_calls=["x"]), TypeError),  # type: ignore[list-item]
        (lambda: ScriptedServer([]).port, RuntimeError),
    ]:
        with pytest.raises(kind) as caught:
            bad()
        assert isinstance(caught.value, fg.UsageError)


def test_a_result_from_elsewhere_cannot_be_drawn() -> None:
    built = fg.Flow("f")
    step = fg.ToolStep("t", lambda: "done")
    built.edge(fg.START, step)
    built.edge(step, fg.END)
    stored = fg.RunResult.model_validate_json(built.run("Hi").model_dump_json())
    with pytest.raises(fg.UsageError, match="did not come from running a flow in this process"):
        stored.render()


def test_run_time_errors_name_the_node_and_keep_the_run(serve: Serve) -> None:
    _, model = serve([error(500)] * 3)
    built = flow()
    built.model = model
    with pytest.raises(fg.ModelError, match="node 'a'") as caught:
        built.run("Hi")
    assert caught.value.result is not None
    assert caught.value.result.messages[0]["content"] == "Hi"


def test_a_traceback_shows_the_public_name() -> None:
    with pytest.raises(fg.FlowValidationError) as caught:
        fg.Retry(attempts=0)
    shown = "".join(traceback.format_exception_only(caught.value))
    assert shown.startswith("flowgraph.FlowValidationError: Retry(attempts=0)")
