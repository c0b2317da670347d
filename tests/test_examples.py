"""The examples run, against the scripted server, with the outcomes they promise."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import flowgraph as fg
from examples import nested_chats, research_hook, support
from flowgraph.testing import ChatRequest, tool_call

from .conftest import Serve, roles


def test_support_example_refund_path(serve: Serve) -> None:
    server, model = serve(
        [
            tool_call("lookup_order", {"order_id": "A-1"}),
            tool_call("transfer_to_refunds"),
            tool_call("issue_refund", {"order_id": "A-1"}),
            "Refunded. Sorry about the kettle!",
        ]
    )
    flow = support.build_flow(model)

    result = flow.run("Refund A-1, it broke.", context={"email": "ada@example.com", "vip": True})

    assert result.path == ["triage", "refunds", "receipt"]
    assert result.output == "Receipt e-mailed to ada@example.com."
    assert result.context["refunded"] == "A-1"
    refunds_request = server.requests[2]
    assert refunds_request.system is not None
    assert "Be extra warm: this is a VIP." in refunds_request.system
    assert refunds_request.messages[-1] == {  # injected by the hook at triage's exit
        "role": "system",
        "content": "Policy: refunds within 30 days.",
    }


def test_support_example_fallback_path(serve: Serve) -> None:
    _, model = serve(["We open at nine."])
    result = support.build_flow(model).run("When do you open?")
    assert (result.path, result.output, result.reason) == (
        ["triage"],
        "We open at nine.",
        "reached END",
    )


def test_research_hook_example(serve: Serve) -> None:
    def script(request: ChatRequest) -> Any:
        if (request.system or "").startswith("You research"):
            return "Returns are accepted within 30 days of delivery."
        if request.last_message["role"] == "user":
            return tool_call("lookup_policy", {"topic": "returns"})
        return "Sorry, 40 days is past our 30-day return window."

    server, model = serve(script)

    result = research_hook.build_flow(model).run("Can I return a kettle after 40 days?")

    assert result.context == {"researched": True}
    assert result.output == "Sorry, 40 days is past our 30-day return window."
    assert roles(server.requests[2].messages) == ["system", "user", "assistant", "tool", "system"]
    assert server.requests[2].messages[-1]["content"] == (
        "Research finding: Returns are accepted within 30 days of delivery."
    )


def test_nested_chats_example_maps_ag2_one_to_one(serve: Serve) -> None:
    def script(request: ChatRequest) -> Any:
        system = request.system or ""
        if system.startswith("You verify"):
            if request.last_message["role"] == "user":
                return tool_call("verify_customer", {"customer_id": "C-42"})
            return tool_call("transfer_to_verify")
        if system.startswith("You are a critic"):
            return "refund, kettle, verified"
        if system.startswith("You are a poet"):
            return "A kettle cold, a refund told."
        return "Your refund is confirmed."

    server, model = serve(script)

    result = nested_chats.build_flow(model).run("I'm C-42, refund my kettle please.")

    assert result.path == ["customer_agent", "verify", "refund_specialist"]
    assert [chat.message for chat in result.chats] == [
        "Summarise the conversation into a few key words\nContext:\n"
        "I'm C-42, refund my kettle please.\nCustomer C-42 is verified.",
        "Write a poem about it.\nContext:\nrefund, kettle, verified",
    ]
    assert server.requests[-1].system == (
        "You are the refund specialist. The customer is verified. Confirm the refund."
    )
    assert result.output == "Your refund is confirmed."
    assert len(server.requests) == 5  # 2 customer turns, critic, poet, refund: nothing else


def test_the_demo_prints_path_and_answer_and_draws_both_pictures(
    serve: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model = serve(["We open at nine."])

    assert support.main(["When do you open?", "--out", str(tmp_path)], model=model) == 0

    out = capsys.readouterr().out
    assert "path:   START -> triage" in out
    assert "answer: We open at nine." in out
    assert "model:  scripted" in out
    for name in ("support.png", "support-run.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_the_demo_shows_what_the_model_did_not_only_the_last_steps_output(
    serve: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17, item 13: 'answer: Receipt e-mailed' hid three refunds of 'A-1.0' and a
    run that hit max_turns."""
    refund = tool_call("issue_refund", {"order_id": "A-1.0"})
    script = [tool_call("transfer_to_refunds"), refund, refund, refund]
    _, model = serve(script)

    assert support.main(["--out", str(tmp_path)], model=model) == 0

    out = capsys.readouterr().out
    assert "  triage    transfer_to_refunds() -> Transferred to refunds.\n" in out
    assert "  (hook)    injected: Policy: refunds within 30 days.\n" in out
    assert "  refunds   issue_refund(order_id='A-1.0') -> Refund issued for A-1.0.  (x3)\n" in out
    assert "answer: Receipt e-mailed to ada@example.com.  (the output of the last step" in out
    assert "note:   agent 'refunds' reached max_turns=3 without a final answer" in out
    assert "tiny" not in out  # said of the bundled model only


def test_the_demo_says_once_that_the_bundled_model_is_tiny(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import flowgraph as fg

    class Tiny(fg.LocalModel):
        async def complete(self, messages: Any, **options: Any) -> fg.Completion:
            return fg.Completion({"role": "assistant", "content": "Hello."}, fg.Usage(requests=1))

    assert support.main(["Hi", "--out", str(tmp_path)], model=Tiny()) == 0
    out = capsys.readouterr().out
    assert out.count("tiny and often wrong") == 1
    assert "set OPENAI_API_KEY for a real model" in out


# -- a flow served as Server-Sent Events, by a real ASGI server -----------------------------


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port, in a thread; yields its URL."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def read_sse(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event name, data) of each Server-Sent Event in ``lines``."""
    name, data = "", ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif not line and name:
            yield name, data
            name, data = "", ""


def test_a_flow_served_as_server_sent_events(serve: Serve) -> None:
    """Issue 18, item 4: the documented recipe, through uvicorn and a real HTTP client."""
    import httpx2

    import flowgraph.events as events
    from examples import sse_app

    script = [tool_call("transfer_to_shipping"), "Your lamp is in transit."]
    _, model = serve(script)
    with serving(sse_app.make_app(support.build_flow(model))) as url:
        with httpx2.stream("POST", f"{url}/chat", json={"message": "Where is B-7?"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            received = list(read_sse(response.iter_lines()))
        refused = httpx2.post(f"{url}/chat", json={"text": "no message"})

    parsed = [events.EVENTS.validate_json(data) for _, data in received]
    assert [name for name, _ in received] == [event.type for event in parsed]
    assert parsed[0].type == "run_started" and parsed[-1].type == "run_finished"
    text = "".join(e.delta for e in parsed if e.type == "text_delta" and e.path == ["shipping"])
    assert text == "Your lamp is in transit."
    assert parsed[-1].result.path == ["triage", "shipping"]  # type: ignore[union-attr]
    assert refused.status_code == 400


def test_a_client_that_goes_away_cancels_its_run(serve: Serve) -> None:
    import httpx2

    from examples import sse_app

    after: list[str] = []
    _, model = serve(["A long answer, sent slowly, piece by piece."], stream_delay=0.5)
    flow = fg.Flow("talky", model=model)
    flow.edge(fg.START, fg.Agent("talker", "Talk."))
    flow.edge("talker", fg.ToolStep("after", lambda: after.append("ran")))
    flow.edge("after", fg.END)
    with serving(sse_app.make_app(flow)) as url:
        with httpx2.stream("POST", f"{url}/chat", json={"message": "Talk to me."}) as response:
            for name, _ in read_sse(response.iter_lines()):
                if name == "text_delta":
                    break  # the client hangs up mid-answer
        time.sleep(3)  # longer than the rest of the answer would take
    assert after == [], "the run went on after its client left"
