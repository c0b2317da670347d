"""Issue 16: the kill -9 chaos loop. Runs of a flow with side effects keyed on
``ctx.idempotency_key`` (an agent's tool, a tool step after a model's hand-off) are
killed with SIGKILL at random moments, and some right after the step's effect, then
resumed (and killed again) until they end. Every run must end as an uninterrupted run
does, and every effect must happen exactly once. Real processes, a real SQLite file,
a real HTTP server; at least 30 kills per run of the suite."""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import flowgraph as fg
from flowgraph.testing import ChatRequest, delay, tool_call

from . import durable_app
from .conftest import Serve
from .test_durability import agent_of, child, lines

RUNS, MOST_RUNS = 10, 25  # more runs if the machine is so fast that kills miss
KILLS_AT_LEAST = 30
TARGETED = (2, 5, 8)  # these runs' ship step kills its own process after its effect


def chaos_script(request: ChatRequest) -> Any:
    """The flow's answers, by agent and by what the conversation holds: a replay after a
    crash gets the same ones. Each takes 10-40 ms, so kills land everywhere."""
    agent = agent_of(request)
    if agent == "triage":
        answer: Any = tool_call("transfer_to_cashier", {}, id="call_transfer")
    elif agent == "cashier":
        # A new id each time, as providers do: a request made again after a crash gets
        # another, so only a commit made before the tool ran keeps its key.
        charged = any(str(m.get("content")).startswith("charged") for m in request.messages)
        call = tool_call("charge", {"amount": 5}, id=f"call_{uuid.uuid4().hex[:8]}")
        answer = "Charged 5." if charged else call
    else:
        answer = "Receipt sent."
    return delay(random.uniform(0.01, 0.04), then=answer)


def final(store: Path, run_id: str) -> dict[str, Any]:
    """The run as its store holds it at the end, its id written as RUN."""
    snapshot = asyncio.run(fg.SQLiteCheckpointer(store).load(run_id))
    assert snapshot is not None, run_id
    kept = {
        "status": snapshot.status,
        "output": snapshot.output,
        "path": snapshot.path,
        "messages": snapshot.messages,
        "context": snapshot.context,
    }
    return json.loads(same_ids(json.dumps(kept).replace(f"{run_id}:", "RUN:")))


def same_ids(text: str) -> str:
    return re.sub(r"call_[0-9a-f]{8}", "call_ID", text)


def attempt(command: list[str], kill_after: float | None) -> str:
    """Run a child; SIGKILL it ``kill_after`` seconds after it is ready. How it ended:
    "killed" (by us or by itself) or "ended"."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready = proc.stdout.readline().strip()
    try:
        _, err = proc.communicate(timeout=kill_after if kill_after is not None else 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "killed"
    if proc.returncode == -signal.SIGKILL:
        return "killed"
    assert proc.returncode == 0 and ready == '"ready"', err
    return "ended"


def test_runs_killed_at_random_end_as_uninterrupted_runs_with_each_effect_once(
    serve: Serve, tmp_path: Path
) -> None:
    random.seed(16)
    server, _ = serve(chaos_script)
    whole_dir = tmp_path / "whole"
    whole_dir.mkdir()
    command = child("run", "chaos", "--run-id", "w", store=tmp_path / "w.db", url=server.url)
    assert attempt([*command, "--dir", str(whole_dir), "--announce"], None) == "ended"
    whole = final(tmp_path / "w.db", "w")
    assert whole["status"] == "completed"
    assert whole["path"] == ["triage", "cashier", "ship", "notify"]
    whole_effects = sorted(
        same_ids(key.replace("w:", "RUN:")) for key in lines(whole_dir / "effects.txt")
    )

    store, workdir = tmp_path / "chaos.db", tmp_path / "chaos"
    workdir.mkdir()
    flow = durable_app.chaos_flow(server.url)
    kills = 0
    runs = 0
    while runs < RUNS or (kills < KILLS_AT_LEAST and runs < MOST_RUNS):
        index, runs = runs, runs + 1
        run_id = f"r{index}"
        if index in TARGETED:
            (workdir / "crash-once").touch()
        for tries in range(20):
            stored = {info.run_id: info.status for info in flow.runs(store)}
            if stored.get(run_id) == "completed":
                break
            verb = "resume" if run_id in stored else "run"
            command = child(verb, "chaos", "--run-id", run_id, store=store, url=server.url)
            kill_after = random.uniform(0.0, 0.25) if tries < 4 else None  # then let it end
            if attempt([*command, "--dir", str(workdir), "--announce"], kill_after) == "killed":
                kills += 1
        assert stored.get(run_id) == "completed", f"{run_id} never ended"
        assert not (workdir / "crash-once").exists()

    assert kills >= KILLS_AT_LEAST, f"only {kills} kills"
    effects = lines(workdir / "effects.txt")
    assert len(effects) == len(set(effects)), "an effect happened twice"
    for index in range(runs):
        run_id = f"r{index}"
        mine = sorted(
            same_ids(key.replace(f"{run_id}:", "RUN:"))
            for key in effects
            if key.startswith(f"{run_id}:")
        )
        assert mine == whole_effects, run_id  # each effect once, none missing
        assert final(store, run_id) == whole, run_id
