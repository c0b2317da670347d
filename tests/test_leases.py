"""Issue 16, item 2: one driver per run. Two drivers resuming one run (two processes,
two store objects, or twice in one process) once let both drive it to the end, with
duplicated path and trace entries; now the second is refused, naming the holder, and
a crashed holder's run is taken over (at once on its host, elsewhere when its lease
lapses)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

import flowgraph as fg
from flowgraph.testing import delay

from .conftest import Serve
from .test_durability import agent_of, child, pay_script, wait_for


def approval(effects: list[str]) -> fg.Flow:
    """ask (a human) -> ship (slow, its effect recorded) -> END."""

    def ship(ctx: fg.RunContext) -> str:
        time.sleep(0.3)
        effects.append(ctx.idempotency_key)
        return "shipped"

    flow = fg.Flow("approval")
    flow.edge(fg.START, fg.Human("ask", prompt="Ship it?"))
    flow.edge("ask", fg.ToolStep("ship", ship))
    flow.edge("ship", fg.END)
    return flow


async def _resume_twice(
    flow: fg.Flow, run_id: str, one: fg.SQLiteCheckpointer, other: fg.SQLiteCheckpointer
) -> list[fg.RunResult | BaseException]:
    first = asyncio.create_task(flow.aresume(run_id, store=one, reply="yes"))
    await asyncio.sleep(0.1)  # the first holds the lease, inside its slow step
    second = asyncio.create_task(flow.aresume(run_id, store=other, reply="yes"))
    return await asyncio.gather(first, second, return_exceptions=True)


def test_a_second_driver_is_refused_naming_the_holder(tmp_path: Path) -> None:
    effects: list[str] = []
    flow = approval(effects)
    path = tmp_path / "runs.db"
    one, other = fg.SQLiteCheckpointer(path), fg.SQLiteCheckpointer(path)  # two "processes"
    paused = flow.run("Order A-1", store=one)

    done, refused = asyncio.run(_resume_twice(flow, paused.run_id, one, other))

    assert isinstance(done, fg.RunResult) and done.status == "completed"
    assert isinstance(refused, fg.UsageError)
    assert f"process {os.getpid()} on {socket.gethostname()!r}" in str(refused)
    assert effects == [f"{paused.run_id}:2:ship"]  # once
    stored = asyncio.run(fg.SQLiteCheckpointer(path).load(paused.run_id))
    assert stored is not None and stored.path == ["ask", "ship"]  # no duplicated entries


def test_twice_in_one_process_is_refused_too(tmp_path: Path) -> None:
    effects: list[str] = []
    flow = approval(effects)
    store = fg.SQLiteCheckpointer(tmp_path / "runs.db")
    paused = flow.run("Order A-1", store=store)

    done, refused = asyncio.run(_resume_twice(flow, paused.run_id, store, store))

    assert isinstance(done, fg.RunResult) and done.status == "completed"
    assert isinstance(refused, fg.UsageError)
    assert "is being driven in this process already" in str(refused)
    assert len(effects) == 1


def test_a_lease_held_on_another_host_is_waited_out(tmp_path: Path) -> None:
    effects: list[str] = []
    flow = approval(effects)
    path = tmp_path / "runs.db"
    paused = flow.run("Order A-1", store=path)
    with sqlite3.connect(path) as db:  # a process on another machine holds it
        db.execute(
            "INSERT INTO leases VALUES (?, 'elsewhere:4242:abcdef01', ?)",
            (paused.run_id, time.time() + 1.0),
        )

    with pytest.raises(fg.UsageError, match=r"driven by process 4242 on 'elsewhere'"):
        flow.resume(paused.run_id, store=path, reply="yes")
    time.sleep(1.1)  # its holder died: the lease lapses, unrenewed
    assert flow.resume(paused.run_id, store=path, reply="yes").status == "completed"
    assert len(effects) == 1


def test_leases_are_released_when_a_drive_ends_or_is_cancelled(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    effects: list[str] = []
    flow = approval(effects)
    paused = flow.run("Order A-1", store=path)

    async def cancel_inside_the_step() -> None:
        task = asyncio.create_task(flow.aresume(paused.run_id, store=path, reply="yes"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_inside_the_step())
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM leases").fetchone()[0] == 0
    resumed = flow.resume(paused.run_id, store=path)  # the reply was taken: it goes on
    assert resumed.status == "completed"
    assert set(effects) == {f"{paused.run_id}:2:ship"}  # the cancelled try's thread ran on


def test_a_second_process_is_refused_while_the_first_drives(serve: Serve, tmp_path: Path) -> None:
    """Real processes: the first waits on a slow model reply, holding the lease."""

    def script(request: object) -> object:
        if agent_of(request) == "cashier" and not any(  # type: ignore[arg-type]
            m["role"] == "tool"
            for m in request.messages  # type: ignore[attr-defined]
        ):
            return delay(3.0, pay_script(request))  # type: ignore[arg-type]
        return pay_script(request)  # type: ignore[arg-type]

    server, _ = serve(script)
    store = tmp_path / "runs.db"
    first = subprocess.Popen(
        child("run", "pay", "--run-id", "r1", store=store, url=server.url, workdir=tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: len(server.requests) >= 1)  # it holds the lease, awaiting the model
    second = subprocess.run(
        child("resume", "pay", "--run-id", "r1", store=store, url=server.url, workdir=tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    out, _ = first.communicate(timeout=60)

    assert second.returncode != 0
    assert f"driven by process {first.pid} on" in second.stderr
    assert json.loads(out)["status"] == "completed"
    assert (tmp_path / "effects.txt").read_text().split() == ["r1:1:call_charge"]
