"""Durable runs across real processes: SIGKILL inside a tool and mid-request, a human
pause resumed from another process, and four processes sharing one SQLite file.

Each child is ``tests/durable_app.py`` run with ``sys.executable``; the scripted
server runs here, in the test process, so it counts every request of every child.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from flowgraph.testing import ChatRequest, delay, tool_call

from . import durable_app
from .conftest import Serve

APP = Path(durable_app.__file__)
TIMEOUT = 60


def agent_of(request: ChatRequest) -> str:
    """Which agent of the pay flow sent ``request``: its system message names it."""
    return str(request.messages[0]["content"]).rstrip(".").lower()


def pay_script(request: ChatRequest) -> Any:
    """The pay flow's answers, by agent and by tool results: a replay gets the same."""
    if agent_of(request) == "notify":
        return "Receipt sent."
    if any(message["role"] == "tool" for message in request.messages):
        return "Charged 5."
    return tool_call("charge", {"amount": 5}, id="call_charge")


def child(*args: str, store: Path, url: str = "", workdir: Path | None = None) -> list[str]:
    command = [sys.executable, str(APP), *args, "--store", str(store), "--url", url]
    return command + (["--dir", str(workdir)] if workdir is not None else [])


def finish(command: list[str]) -> dict[str, Any]:
    """Run a child to its end; its result, from the JSON line it printed."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def uninterrupted(url: str, tmp_path: Path) -> dict[str, Any]:
    """The pay flow run start to end in its own process, store and directory."""
    workdir = tmp_path / "whole"
    workdir.mkdir()
    return finish(child("run", "pay", store=tmp_path / "whole.db", url=url, workdir=workdir))


def same_run(resumed: dict[str, Any], whole: dict[str, Any]) -> None:
    assert resumed["status"] == whole["status"] == "completed"
    for field in ("output", "path", "roles", "messages", "context", "usage"):
        assert resumed[field] == whole[field], field


def wait_for(predicate: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_process_killed_inside_a_tool_resumes_without_repeating_a_step(
    serve: Serve, tmp_path: Path
) -> None:
    server, _ = serve(pay_script)
    whole = uninterrupted(server.url, tmp_path)
    assert whole["output"] == "Receipt sent."
    assert whole["path"] == ["cashier", "notify"]
    assert whole["context"] == {"charged": 5}
    whole_requests = [agent_of(request) for request in server.requests]
    assert whole_requests == ["cashier", "cashier", "notify"]

    workdir, store = tmp_path / "crash", tmp_path / "crash.db"
    workdir.mkdir()
    (workdir / "crash-once").touch()  # the tool kills its process after its effect
    first_request = len(server.requests)
    killed = subprocess.run(
        child("run", "pay", "--run-id", "pay-1", store=store, url=server.url, workdir=workdir),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (workdir / "crash-once").exists()
    [info] = durable_app.pay_flow(server.url).runs(store)
    assert (info.run_id, info.status, info.node) == ("pay-1", "running", "cashier")

    resumed = finish(
        child("resume", "pay", "--run-id", "pay-1", store=store, workdir=workdir, url=server.url)
    )

    same_run(resumed, whole)
    assert lines(workdir / "effects.txt") == ["pay-1:1:call_charge"]
    # The tool ran again (its answer was never committed), with the same key.
    assert lines(workdir / "attempts.txt") == ["pay-1:1:call_charge"] * 2
    # The completion that asked for the charge was committed before the tool ran:
    # it was not requested again, nor was anything else.
    assert [agent_of(request) for request in server.requests[first_request:]] == whole_requests


def test_a_process_killed_mid_request_repeats_only_that_request(
    serve: Serve, tmp_path: Path
) -> None:
    arrived = threading.Event()
    notified = [0]

    def script(request: ChatRequest) -> Any:
        if agent_of(request) == "notify":
            notified[0] += 1
            if notified[0] == 2:  # the second notify request is the killed run's
                arrived.set()
                return delay(TIMEOUT, then="Receipt sent.")
        return pay_script(request)

    server, _ = serve(script)
    whole = uninterrupted(server.url, tmp_path)
    workdir, store = tmp_path / "crash", tmp_path / "crash.db"
    workdir.mkdir()
    first_request = len(server.requests)
    flow = durable_app.pay_flow(server.url)
    command = child("run", "pay", "--run-id", "pay-2", store=store, url=server.url, workdir=workdir)

    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            assert arrived.wait(TIMEOUT), "the child never asked notify"
            # The step to notify is committed off the loop: wait until it is on disk.
            wait_for(
                lambda: [(i.node, i.path) for i in flow.runs(store)] == [("notify", ["cashier"])]
            )
        finally:
            proc.kill()
            proc.wait(TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    assert flow.runs(store)[0].status == "running"

    resumed = finish(
        child("resume", "pay", "--run-id", "pay-2", store=store, url=server.url, workdir=workdir)
    )

    same_run(resumed, whole)
    requests = [agent_of(request) for request in server.requests[first_request:]]
    assert requests == ["cashier", "cashier", "notify", "notify"]  # only the killed one again
    assert lines(workdir / "effects.txt") == ["pay-2:1:call_charge"]
    assert lines(workdir / "attempts.txt") == ["pay-2:1:call_charge"]  # the tool ran once


def test_a_human_pause_in_one_process_is_answered_from_another(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    flow = durable_app.approval_flow()

    paused = finish(child("run", "refunds", store=store))

    assert (paused["status"], paused["prompt"]) == ("waiting", "Refund A-1?")
    [info] = flow.runs(store)
    assert (info.run_id, info.status, info.node) == (paused["run_id"], "waiting", "approve")

    result = finish(
        child("resume", "refunds", "--run-id", paused["run_id"], "--reply", "yes", store=store)
    )

    assert result["status"] == "completed"
    assert (result["output"], result["path"]) == ("paid A-1", ["approve", "pay"])
    assert result["roles"] == ["user", "assistant", "user", "assistant"]
    assert result["messages"][2] == {"role": "user", "content": "yes"}
    assert result["context"] == {"order": "A-1"}
    [info] = flow.runs(store)
    assert (info.run_id, info.status, info.path) == (paused["run_id"], "completed", result["path"])


def test_four_processes_commit_a_hundred_runs_to_one_file(serve: Serve, tmp_path: Path) -> None:
    server, _ = serve(pay_script)
    store, go = tmp_path / "runs.db", tmp_path / "go"
    procs: list[subprocess.Popen[str]] = []
    try:
        for n in range(4):
            workdir = tmp_path / f"p{n}"
            workdir.mkdir()
            command = child(
                "many",
                "pay",
                "--count",
                "25",
                "--go",
                str(go),
                store=store,
                url=server.url,
                workdir=workdir,
            )
            procs.append(
                subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        for proc in procs:  # all four have imported flowgraph and opened the store
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline()) == "ready"
        go.touch()
        outputs = [proc.communicate(timeout=TIMEOUT) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(TIMEOUT)

    finished: dict[str, str] = {}
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "database is locked" not in err
        runs = [json.loads(line) for line in out.splitlines()]
        assert len(runs) == 25
        finished.update((run["run_id"], run["status"]) for run in runs)
    assert len(finished) == 100
    assert set(finished.values()) == {"completed"}
    infos = durable_app.pay_flow(server.url).runs(store, limit=1000)
    assert sorted(info.run_id for info in infos) == sorted(finished)
    assert {info.status for info in infos} == {"completed"}
    assert {tuple(info.path) for info in infos} == {("cashier", "notify")}
    assert len(server.requests) == 300


def test_a_process_killed_inside_a_step_an_llm_chose_resumes_it_under_the_same_key(
    serve: Serve, tmp_path: Path
) -> None:
    """Issue 16, item 5: the hand-off was decided by the model, then the tool step's
    effect happened, then the process died. The decision must be durable before the
    step runs: re-deciding (here the model would choose audit, then ship) ran the
    step again under a new key, and its effect twice."""
    decided = [0]

    def script(request: ChatRequest) -> Any:
        decided[0] += 1
        target = "ship" if decided[0] == 1 else "audit"
        return tool_call(f"transfer_to_{target}", {}, id=f"call_{decided[0]}")

    server, _ = serve(script)
    workdir, store = tmp_path / "crash", tmp_path / "crash.db"
    workdir.mkdir()
    (workdir / "crash-once").touch()
    command = child("run", "routed", "--run-id", "r2", store=store, url=server.url, workdir=workdir)
    killed = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    resumed = finish(
        child("resume", "routed", "--run-id", "r2", store=store, url=server.url, workdir=workdir)
    )

    assert resumed["status"] == "completed" and resumed["path"] == ["triage", "ship"]
    assert lines(workdir / "attempts.txt") == ["r2:2:ship"] * 2  # again, under the same key
    assert lines(workdir / "effects.txt") == ["r2:2:ship"]
    assert decided[0] == 1  # the decision was not made again
