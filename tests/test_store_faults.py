"""Issue 16, the store: one bad write fails only the run it belongs to, and the writer
recovers from transient errors (a lock held past the busy timeout) once they clear,
losing no commit of any run. Real SQLite files, real locks, a real scripted server."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import flowgraph as fg
from flowgraph.testing import Reply
from tests.conftest import Serve


def counting(name: str = "counting", steps: int = 20, pause: float = 0.005) -> fg.Flow:
    """A flow of ``steps`` tool steps, each a few milliseconds long."""

    def count(ctx: fg.RunContext) -> int:
        time.sleep(pause)
        ctx.context["n"] += 1
        return int(ctx.context["n"])

    flow = fg.Flow(name, max_steps=steps + 5)
    flow.edge(fg.START, fg.ToolStep("count", count))
    flow.edge("count", fg.END, when=lambda ctx: ctx.context["n"] >= steps)
    flow.edge("count", "count")
    return flow


def one_agent(model: fg.OpenAIModel) -> fg.Flow:
    """A tool step longer than max_wait (its commit is written meanwhile), then an agent."""
    flow = fg.Flow("greeting", model=model)
    agent = fg.Agent("greeter", "Greet.")
    flow.edge(fg.START, fg.ToolStep("look_up", lambda: time.sleep(0.15)))
    flow.edge("look_up", agent)
    flow.edge(agent, fg.END)
    return flow


async def _bad_beside_good(
    bad: fg.Flow, store: fg.SQLiteCheckpointer, context: dict[str, int] | None = None
) -> fg.RunResult:
    good = asyncio.create_task(
        counting().arun("go", context={"n": 0}, store=store, run_id="innocent")
    )
    await asyncio.sleep(0.03)  # the innocent run's commits are in the buffer
    with pytest.raises(fg.RunError, match="cannot be stored") as caught:
        await bad.arun("Hi", store=store, run_id="offending", context=context)
    assert isinstance(caught.value.__cause__, fg.StoreError)
    assert "run 'offending'" in str(caught.value.__cause__)
    return await good


def test_a_usage_too_big_to_store_fails_its_run_only(serve: Serve, tmp_path: Path) -> None:
    _, model = serve([Reply("Hello", usage=(2**64, 1))])
    store = fg.SQLiteCheckpointer(tmp_path / "runs.db")

    innocent = asyncio.run(_bad_beside_good(one_agent(model), store))

    assert innocent.status == "completed"
    later = counting().run("go", context={"n": 0}, store=store)  # the store still writes
    fresh = fg.SQLiteCheckpointer(tmp_path / "runs.db")  # as another process reads it
    stored = {info.run_id: info.status for info in asyncio.run(fresh.list_runs())}
    assert stored["innocent"] == "completed" and stored[later.run_id] == "completed"
    # The offending run is failed in the file, at the last commit it could store.
    assert stored["offending"] == "failed"
    offending = asyncio.run(fresh.load("offending"))
    assert offending is not None and "64-bit" in offending.reason
    assert offending.path == ["look_up"]
    assert offending.messages == [{"role": "user", "content": "Hi"}]
    assert asyncio.run(fresh.load("innocent")).context == '{"n":20}'  # type: ignore[union-attr]


def test_a_lone_surrogate_in_a_flow_name_fails_its_run_only(tmp_path: Path) -> None:
    store = fg.SQLiteCheckpointer(tmp_path / "runs.db")
    bad = counting(name="caf\udce9", steps=3)

    innocent = asyncio.run(_bad_beside_good(bad, store, {"n": 0}))

    assert innocent.status == "completed"
    fresh = fg.SQLiteCheckpointer(tmp_path / "runs.db")
    assert [info.status for info in counting().runs(fresh)] == ["completed"]


def test_a_lock_held_past_the_busy_timeout_is_waited_out(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = fg.SQLiteCheckpointer(path, busy_timeout=0.2)
    held = threading.Event()

    def hold_the_lock() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        held.set()
        time.sleep(1.0)  # five busy timeouts
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait()
    results = [counting().run("go", context={"n": 0}, store=store) for _ in range(2)]
    holder.join()

    assert [result.status for result in results] == ["completed", "completed"]
    fresh = fg.SQLiteCheckpointer(path)
    for result in results:
        stored = asyncio.run(fresh.load(result.run_id))
        assert stored is not None and stored.status == "completed"
        assert stored.path == result.path and stored.messages == result.messages


def test_the_busy_timeout_is_checked() -> None:
    with pytest.raises(fg.UsageError, match="busy_timeout"):
        fg.SQLiteCheckpointer("runs.db", busy_timeout=-1)


def test_a_write_the_database_rolled_back_names_its_cause_and_the_store_goes_on(
    tmp_path: Path,
) -> None:
    """SQLite ends the transaction itself on some errors (a full disk; here a trigger
    that says so): rolling back again must not replace the cause with "cannot rollback -
    no transaction is active", and once the cause is gone the store writes again."""
    path = tmp_path / "runs.db"
    store = fg.SQLiteCheckpointer(path)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER full BEFORE INSERT ON commits "
            "BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END"
        )
    with pytest.raises(fg.RunError) as caught:
        counting(steps=3).run("go", context={"n": 0}, store=store)
    assert "database or disk is full" in str(caught.value.__cause__)
    assert "no transaction is active" not in str(caught.value.__cause__)

    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER full")
    after = counting(steps=3).run("go", context={"n": 0}, store=store)
    newest = counting().runs(store)[0]  # newest first
    assert newest.run_id == after.run_id and newest.status == "completed"
    assert asyncio.run(store.load(after.run_id)).path == after.path  # type: ignore[union-attr]


def test_a_database_that_is_not_a_run_store_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("PRAGMA user_version = 7")
    before = path.read_bytes()

    with pytest.raises(fg.ConfigurationError, match=r"not a flowgraph run store \(it holds"):
        counting(steps=1).run("go", context={"n": 0}, store=path)

    assert path.read_bytes() == before
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 7
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def _stored_run(path: Path) -> tuple[fg.Flow, str]:
    """A paused run of 12 steps written in many segments (a write after each step)."""
    flow = counting(steps=12, pause=0.01)
    store = fg.SQLiteCheckpointer(path, quiet=0.001, max_wait=0.002)
    ask = fg.Human("ask", prompt="Go on?")
    flow.edge("count", ask, when=lambda ctx: ctx.context["n"] == 12)
    flow._edges.insert(0, flow._edges.pop())  # asked before the END edge
    paused = flow.run("go", context={"n": 0}, store=store)
    assert paused.status == "waiting"
    return flow, paused.run_id


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (
            "UPDATE commits SET data = 'not json' WHERE seq = (SELECT max(seq) FROM commits)",
            "cannot be read",
        ),
        (
            "UPDATE commits SET data = '[[1, 2]]' WHERE seq = (SELECT max(seq) FROM commits)",
            "cannot be read",
        ),
        (
            "DELETE FROM commits WHERE seq = (SELECT min(seq) FROM commits WHERE first > 1)",
            "are missing",
        ),
    ],
)
def test_a_damaged_run_is_a_store_error_naming_the_run(
    tmp_path: Path, damage: str, said: str
) -> None:
    path = tmp_path / "runs.db"
    flow, run_id = _stored_run(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM commits").fetchone()[0] >= 3
        db.execute(damage)

    store = fg.SQLiteCheckpointer(path)
    with pytest.raises(fg.StoreError, match=f"run '{run_id}'.*{said}"):
        flow.resume(run_id, store=store, reply="yes")


def test_a_damaged_listing_is_a_store_error_naming_the_run(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    _, run_id = _stored_run(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET usage = 'garbage'")

    with pytest.raises(fg.StoreError, match=f"run '{run_id}'.*cannot be read"):
        counting().runs(fg.SQLiteCheckpointer(path))


FULL_DISK = """
import resource, signal, sys, threading
import flowgraph as fg

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
store = fg.SQLiteCheckpointer(sys.argv[1])

def big(ctx):
    ctx.context["n"] += 1
    return "x" * 20_000

flow = fg.Flow("full")
flow.edge(fg.START, fg.ToolStep("big", big))
flow.edge("big", fg.END, when=lambda ctx: ctx.context["n"] >= 40)
flow.edge("big", "big")
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))  # the disk fills at 200 kB
threading.Timer(1.0, resource.setrlimit, (resource.RLIMIT_FSIZE, (hard, hard))).start()
result = flow.run("go", context={"n": 0}, store=store, run_id="filled")
print(result.status, len(result.path))
"""


def test_a_full_disk_is_waited_out_and_nothing_is_lost(tmp_path: Path) -> None:
    """A real full "disk": the process may write no file past 200 kB for a second
    (RLIMIT_FSIZE), then space comes back. It failed with "cannot rollback - no
    transaction is active" and broke the store; now the writer tries again."""
    script = tmp_path / "full.py"
    script.write_text(FULL_DISK)
    path = tmp_path / "runs.db"
    done = subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["completed", "40"]
    stored = asyncio.run(fg.SQLiteCheckpointer(path).load("filled"))
    assert stored is not None and stored.status == "completed" and len(stored.path) == 40
