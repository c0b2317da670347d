"""Checkpoints: commits after every step, resume, fork, listing, and what a store keeps."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import flowgraph as fg
from flowgraph._store.records import usage_of
from flowgraph._store.sqlite_format import SCHEMA
from flowgraph.testing import ChatRequest, error, tool_call

from .conftest import Serve


def lookup_order(order_id: str) -> dict[str, str]:
    """Look up an order by its id."""
    return {"id": order_id, "status": "delivered"}


def issue_refund(order_id: str, ctx: fg.RunContext) -> str:
    """Refund an order."""
    ctx.context["refunded"] = order_id
    return f"refunded {order_id}"


def by_answers(request: ChatRequest) -> Any:
    """The support conversation, by how many tool results the request holds."""
    answered = sum(1 for message in request.messages if message["role"] == "tool")
    script: list[Any] = [
        tool_call("lookup_order", {"order_id": "A-1"}),
        tool_call("transfer_to_refund"),
        tool_call("issue_refund", {"order_id": "A-1"}),
        "Your refund for A-1 is on its way.",
    ]
    return script[answered]


def support(model: fg.Model) -> fg.Flow:
    triage = fg.Agent("triage", "Route the customer.", tools=[lookup_order])
    refund = fg.Agent("refund", "Refund desk.", tools=[issue_refund])
    receipt = fg.ToolStep("receipt", lambda ctx: f"receipt for {ctx.context['refunded']}")
    flow = fg.Flow("support", model=model)
    flow.edge(fg.START, triage)
    flow.edge(triage, refund, when="The customer wants money back.")
    flow.edge(triage, fg.END)
    flow.edge(refund, receipt)
    flow.edge(receipt, fg.END)
    return flow


def test_a_stored_run_reads_back_as_it_ended(serve: Serve, tmp_path: Path) -> None:
    _, model = serve(by_answers)
    store = tmp_path / "runs.db"
    result = support(model).run("Refund A-1", context={"vip": True}, store=store)

    assert result.status == "completed"
    snapshot = asyncio.run(fg.SQLiteCheckpointer(store).load(result.run_id))
    assert snapshot is not None
    assert snapshot.messages == result.messages
    assert snapshot.path == result.path == ["triage", "refund", "receipt"]
    assert json.loads(snapshot.context or "{}") == {"vip": True, "refunded": "A-1"}
    assert usage_of(snapshot.usage) == result.usage
    assert [record["node"] for record in snapshot.trace] == result.path
    assert snapshot.status == "completed"
    assert snapshot.reason == "reached END"


def test_runs_lists_status_path_and_usage(serve: Serve, tmp_path: Path) -> None:
    _, model = serve(by_answers)
    store = tmp_path / "runs.db"
    flow = support(model)
    first = flow.run("Refund A-1", store=store)
    second = flow.run("Refund A-1", store=store)

    infos = flow.runs(store)

    assert [info.run_id for info in infos] == [second.run_id, first.run_id]
    assert infos[0].status == "completed"
    assert infos[0].path == ["triage", "refund", "receipt"]
    assert infos[0].usage == second.usage
    assert infos[0].node == "END"
    assert 0 <= infos[0].age < 60
    assert fg.Flow("other").runs(store) == []


def test_each_commit_holds_only_what_the_step_changed(tmp_path: Path) -> None:
    """200 steps of a growing conversation: the commits do not grow with it."""

    def say(ctx: fg.RunContext) -> str:
        ctx.context["n"] += 1
        return "x" * 200

    step = fg.ToolStep("say", say)
    flow = fg.Flow("chain", max_steps=500)
    flow.edge(fg.START, step)
    flow.edge(step, fg.END, when=lambda ctx: ctx.context["n"] >= 200)
    flow.edge(step, step)
    store = tmp_path / "runs.db"
    result = flow.run("go", context={"n": 0}, store=store)

    assert result.steps == 200
    with sqlite3.connect(store) as db:
        # Each row holds the commits of a batch: an entry each, with its new messages.
        entries = db.execute(
            "SELECT length(entry.value), json_array_length(entry.value, '$[3]') "
            "FROM commits, json_each(commits.data) AS entry ORDER BY commits.seq, entry.key"
        ).fetchall()
    messages = sum(count for _, count in entries)
    sizes = [size for size, _ in entries]
    assert len(entries) == 202  # leaving START, one per step, the end
    assert messages == len(result.messages) == 201  # each message written once
    early, late = sorted(sizes[5:25]), sorted(sizes[-21:-1])
    assert late[10] <= early[10] + 16  # a few more digits, no more


def test_a_failed_run_is_kept_and_resumes_where_it_stopped(serve: Serve, tmp_path: Path) -> None:
    answers: list[Any] = [
        tool_call("lookup_order", {"order_id": "A-1"}),
        tool_call("transfer_to_refund"),
        error(500, "the provider fell over"),
    ]
    server, model = serve(answers)
    store = tmp_path / "runs.db"
    flow = support(model)

    with pytest.raises(fg.ModelError, match="the provider fell over") as caught:
        flow.run("Refund A-1", store=store)
    run_id = caught.value.run_id
    assert run_id is not None
    [info] = flow.runs(store)
    # The refund step never committed: the store has the run as it was before it.
    assert (info.status, info.path, info.node) == ("failed", ["triage"], "refund")
    assert "the provider fell over" in info.reason

    server.add(tool_call("issue_refund", {"order_id": "A-1"}), "On its way.")
    result = flow.resume(run_id, store=store)

    assert result.status == "completed"
    assert result.path == ["triage", "refund", "receipt"]
    assert result.output == "receipt for A-1"
    assert len(server.requests) == 5  # the failed request, again; nothing committed twice
    assert [m["role"] for m in result.messages] == [
        "user",
        *["assistant", "tool"] * 3,
        "assistant",
        "assistant",
    ]
    assert flow.runs(store)[0].status == "completed"


class Crash(BaseException):
    """Stands for the process dying: no handler of flowgraph's runs."""


def test_resume_answers_committed_tool_calls_with_the_same_keys(
    serve: Serve, tmp_path: Path
) -> None:
    """A tool call committed before it ran is answered on resume, not requested again."""
    keys: list[str] = []
    crash = [True]

    def charge(amount: int, ctx: fg.RunContext) -> str:
        """Charge the customer."""
        keys.append(ctx.idempotency_key)
        if crash.pop() if crash else False:
            raise Crash  # the process "dies" while the tool runs: nothing more is committed
        return "charged"

    server, model = serve([tool_call("charge", {"amount": 5}), "Charged."])
    agent = fg.Agent("cashier", tools=[charge])
    flow = fg.Flow("pay", model=model)
    flow.edge(fg.START, agent)
    flow.edge(agent, fg.END)
    store = tmp_path / "runs.db"

    with pytest.raises(Crash):
        flow.run("Charge me", run_id="pay-1", store=store)
    result = flow.resume("pay-1", store=store)

    assert result.status == "completed"
    assert result.output == "Charged."
    assert keys == ["pay-1:1:call_1", "pay-1:1:call_1"]
    assert len(server.requests) == 2


def test_fork_goes_on_from_an_earlier_step_with_new_context(serve: Serve, tmp_path: Path) -> None:
    def greet(ctx: fg.RunContext) -> str:
        return f"hello {ctx.context['name']}"

    def shout(ctx: fg.RunContext) -> str:
        return str(ctx.last_text()).upper()

    flow = fg.Flow("greeting")
    flow.edge(fg.START, fg.ToolStep("greet", greet))
    flow.edge("greet", fg.ToolStep("shout", shout))
    flow.edge("shout", fg.END)
    store = tmp_path / "runs.db"
    original = flow.run("hi", context={"name": "ada"}, store=store)

    at_start = flow.fork(original.run_id, step=0, store=store, context={"name": "bob"})
    after_greet = flow.fork(original.run_id, step=1, store=store)

    assert flow.resume(at_start, store=store).output == "HELLO BOB"
    forked = flow.resume(after_greet, store=store)
    assert forked.output == "HELLO ADA"
    assert forked.path == ["greet", "shout"]
    assert forked.trace[0].step == 1
    infos = {info.run_id: info for info in flow.runs(store)}
    assert infos[after_greet].parent == original.run_id
    with pytest.raises(fg.UsageError, match="has no committed step 7 to fork from"):
        flow.fork(original.run_id, step=7, store=store)


def test_a_pydantic_context_comes_back_as_its_model(serve: Serve, tmp_path: Path) -> None:
    flow = fg.Flow("ask")
    flow.edge(fg.START, fg.Human("ask", prompt="Name?"))
    flow.edge("ask", fg.ToolStep("greet", lambda ctx: f"hi {ctx.context.name}"))
    flow.edge("greet", fg.END)
    store = tmp_path / "runs.db"

    paused = flow.run("start", context=Customer(name="ada"), store=store)
    result = flow.resume(paused.run_id, store=store, reply="ok")

    assert isinstance(result.context, Customer)
    assert result.output == "hi ada"


class Customer(BaseModel):
    name: str
    vip: bool = False


def test_context_that_is_not_json_fails_naming_the_variable(tmp_path: Path) -> None:
    flow = fg.Flow("bad")
    flow.edge(fg.START, fg.ToolStep("noop", lambda: None))
    flow.edge("noop", fg.END)

    with pytest.raises(
        fg.RunError, match=r"\('when' holds a value of type object\). Keep JSON values"
    ):
        flow.run("x", context={"when": object()}, store=tmp_path / "runs.db")


def test_resume_refuses_what_it_cannot_do(serve: Serve, tmp_path: Path) -> None:
    _, model = serve(by_answers)
    store = tmp_path / "runs.db"
    flow = support(model)
    done = flow.run("Refund A-1", run_id="r1", store=store)

    with pytest.raises(fg.UsageError, match="there is no run 'nope' in the store"):
        flow.resume("nope", store=store)
    with pytest.raises(fg.UsageError, match=r"run 'r1' has completed; .* flow.fork"):
        flow.resume(done.run_id, store=store)
    with pytest.raises(fg.UsageError, match="run 'r1' belongs to flow 'support', not 'other'"):
        fg.Flow("other").resume("r1", store=store)
    with pytest.raises(fg.UsageError, match="run 'r1' is already in the store"):
        flow.run("again", run_id="r1", store=store)
    with pytest.raises(fg.UsageError, match="store=42 is not a store"):
        flow.run("x", store=42)  # type: ignore[arg-type]
    with pytest.raises(fg.ConfigurationError, match="cannot open the run store"):
        flow.run("x", store=tmp_path / "missing-dir" / "runs.db")


def test_a_memory_store_works_like_a_file(serve: Serve) -> None:
    _, model = serve(by_answers)
    store = fg.MemoryCheckpointer()
    flow = support(model)
    result = flow.run("Refund A-1", store=store)

    [info] = flow.runs(store)
    assert (info.run_id, info.status, info.path) == (result.run_id, "completed", result.path)
    forked = flow.fork(result.run_id, step=2, store=store)
    assert flow.resume(forked, store=store).output == "receipt for A-1"


def test_a_hundred_concurrent_runs_share_one_file(serve: Serve, tmp_path: Path) -> None:
    _, model = serve(by_answers)
    store = tmp_path / "runs.db"
    flow = support(model)

    async def main() -> list[fg.RunResult]:
        return await asyncio.gather(*(flow.arun("Refund A-1", store=store) for _ in range(100)))

    results = asyncio.run(main())

    assert {result.status for result in results} == {"completed"}
    infos = flow.runs(store, limit=1000)
    assert sorted(info.run_id for info in infos) == sorted(result.run_id for result in results)
    checkpointer = fg.SQLiteCheckpointer(store)
    for result in results[:10]:
        snapshot = asyncio.run(checkpointer.load(result.run_id))
        assert snapshot is not None
        assert snapshot.messages == result.messages


def test_the_api_key_reaches_no_checkpoint_error_or_picture(serve: Serve, tmp_path: Path) -> None:
    secret = "sk-secret-4d1f9e2b7c"
    server, _ = serve([tool_call("lookup_order", {"order_id": "A-1"}), error(401, "bad key")])
    model = fg.OpenAIModel("scripted", base_url=server.url, api_key=secret, max_retries=0)
    store = tmp_path / "runs.db"
    flow = support(model)

    with pytest.raises(fg.ModelError) as caught:
        flow.run("Refund A-1", store=store)

    assert server.requests[0].headers["authorization"] == f"Bearer {secret}"
    assert caught.value.result is not None
    texts = [str(caught.value), repr(caught.value), repr(model), flow.to_dot()]
    texts.append(caught.value.result.model_dump_json())
    texts.append(str(caught.value.result.render().source))
    for text in texts:
        assert secret not in text
    for file in tmp_path.iterdir():
        assert secret.encode() not in file.read_bytes()


def test_a_run_awaiting_something_has_its_last_commit_on_disk(tmp_path: Path) -> None:
    store = tmp_path / "runs.db"
    seen: list[tuple[int, str]] = []

    async def slow(ctx: fg.RunContext) -> str:
        await asyncio.sleep(0.3)  # the run is quiet meanwhile: its commits get written
        with sqlite3.connect(store) as db:
            seen.append(db.execute("SELECT step, node FROM runs").fetchone())
        return "done"

    flow = fg.Flow("quiet")
    flow.edge(fg.START, fg.ToolStep("first", lambda ctx: "first"))
    flow.edge("first", fg.ToolStep("slow", slow))
    flow.edge("slow", fg.END)
    flow.run("go", store=store)

    assert seen == [(1, "slow")]  # the step choosing 'slow' was written before it ended


def test_a_store_written_by_another_version_is_refused_with_a_clear_error(
    tmp_path: Path,
) -> None:
    store = tmp_path / "old.db"
    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE commits (run_id TEXT, seq INTEGER, state TEXT)")
    flow = fg.Flow("any")
    flow.edge(fg.START, fg.ToolStep("one", lambda ctx: "one"))
    flow.edge("one", fg.END)

    with pytest.raises(fg.ConfigurationError, match=r"written by another version of flowgraph"):
        flow.run("go", store=store)


def test_a_new_store_opens_while_another_process_holds_the_file(tmp_path: Path) -> None:
    """Another process creating the tables holds the file: opening waits for it (SQLite
    does not wait by itself to switch the file to WAL)."""
    path = tmp_path / "runs.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    for statement in SCHEMA.split(";"):  # a file not a run store's is refused (issue 16)
        holder.execute(statement)
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        store = fg.SQLiteCheckpointer(path)
    finally:
        release.join()
        holder.close()
    assert fg.Flow("any").runs(store) == []


def test_values_orjson_refuses_are_stored_by_pydantic_core(tmp_path: Path) -> None:
    """An output over 64 bits, and a key that is not a string: the entry is encoded by
    pydantic-core instead, and reads back."""
    flow = fg.Flow("big")
    flow.edge(fg.START, fg.ToolStep("huge", lambda ctx: 2**80))
    flow.edge("huge", fg.ToolStep("keyed", lambda ctx: {1: "one"}))
    flow.edge("keyed", fg.END)
    store = fg.SQLiteCheckpointer(tmp_path / "runs.db")
    result = flow.run("go", store=store)

    after_huge = asyncio.run(store.load(result.run_id, step=1))
    assert after_huge is not None and after_huge.output == 2**80
    ended = asyncio.run(store.load(result.run_id))
    assert ended is not None and ended.output == {"1": "one"}
    assert ended.path == ["huge", "keyed"]


def test_a_damaged_segment_is_a_clear_error(tmp_path: Path) -> None:
    """A row that lost an entry no longer covers its commits: reading says so, and
    does not make up a run."""
    flow = fg.Flow("chain")
    flow.edge(fg.START, fg.ToolStep("one", lambda ctx: "one"))
    flow.edge("one", fg.ToolStep("two", lambda ctx: "two"))
    flow.edge("two", fg.END)
    path = tmp_path / "runs.db"
    result = flow.run("go", store=path)
    with sqlite3.connect(path) as db:
        [(seq, first)] = db.execute("SELECT seq, first FROM commits").fetchall()
        assert seq - first + 1 == 4  # leaving START, two steps, the end: one batch
        db.execute("UPDATE commits SET data = json_remove(data, '$[1]')")

    with pytest.raises(fg.StoreError, match=r"holds 3 commits, not 4: the file is damaged"):
        asyncio.run(fg.SQLiteCheckpointer(path).load(result.run_id))


def test_a_burst_of_steps_is_written_once_the_run_goes_quiet(tmp_path: Path) -> None:
    """A burst of steps makes the writer look at the buffer less and less often, but
    once the run waits for something its commits are written, long before max_wait."""
    store = fg.SQLiteCheckpointer(tmp_path / "runs.db", quiet=0.005, max_wait=60.0)
    on_disk: list[int] = []

    async def step(ctx: fg.RunContext) -> None:
        ctx.context["n"] += 1
        if ctx.context["n"] < 30:
            await asyncio.sleep(0.001)  # a step every millisecond or so: busy
            return
        await asyncio.sleep(0.5)  # then quiet, as when awaiting a model
        with sqlite3.connect(store.path) as db:
            on_disk.append(db.execute("SELECT max(seq) FROM commits").fetchone()[0])

    flow = fg.Flow("burst", max_steps=100)
    flow.edge(fg.START, fg.ToolStep("step", step))
    flow.edge("step", fg.END, when=lambda ctx: ctx.context["n"] >= 30)
    flow.edge("step", "step")
    flow.run("go", context={"n": 0}, store=store)

    [written] = on_disk
    assert written is not None and written >= 30  # every step before the quiet one


def test_busy_runs_are_written_every_max_wait(tmp_path: Path) -> None:
    """Steps that never leave the store quiet: their commits are written once the oldest
    has waited max_wait, while the run goes on."""
    store = fg.SQLiteCheckpointer(tmp_path / "runs.db", quiet=10.0, max_wait=0.05)
    on_disk: list[int] = []

    async def busy(ctx: fg.RunContext) -> None:
        ctx.context["n"] += 1
        await asyncio.sleep(0.002)  # a step every 2 ms: never quiet for 10 s
        if ctx.context["n"] == 100:
            with sqlite3.connect(store.path) as db:
                on_disk.append(db.execute("SELECT max(seq) FROM commits").fetchone()[0])

    flow = fg.Flow("busy", max_steps=200)
    flow.edge(fg.START, fg.ToolStep("busy", busy))
    flow.edge("busy", fg.END, when=lambda ctx: ctx.context["n"] >= 100)
    flow.edge("busy", "busy")
    flow.run("go", context={"n": 0}, store=store)

    [written] = on_disk
    assert written is not None and written >= 20  # 100 steps took >= 0.2 s: written on the way


def test_commits_still_buffered_are_written_when_the_process_exits(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    script = (
        "import sys, time\n"
        "import flowgraph as fg\n"
        "from flowgraph.stores import Commit, Position\n"
        "store = fg.SQLiteCheckpointer(sys.argv[1], quiet=60, max_wait=60)\n"
        "store.commit(Commit('r1', 'f', 1, 'running', '', 0, [Position('START', 'exit', 0)],\n"
        "    0, [{'role': 'user', 'content': 'hi'}], (0, 0, 0), {}, started=time.time()))\n"
    )  # and no flush: the store writes at exit
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)

    stored = asyncio.run(fg.SQLiteCheckpointer(path).load("r1"))
    assert stored is not None
    assert stored.messages == [{"role": "user", "content": "hi"}]


def test_a_step_that_cannot_be_stored_fails_the_run_and_keeps_the_steps_before_it(
    tmp_path: Path,
) -> None:
    """A hook injects content no encoder takes at step 4. The run fails with an error
    naming that step (found when its batch of steps is handed to the store, which may
    be some steps later); the file keeps steps 1-3 and the failure, consistently: a
    resume would go on after step 3 with the messages it had then."""

    def count(ctx: fg.RunContext) -> int:
        ctx.context["n"] += 1
        return int(ctx.context["n"])

    flow = fg.Flow("unstorable", max_steps=50)
    flow.edge(fg.START, fg.ToolStep("count", count))
    flow.edge("count", fg.END, when=lambda ctx: ctx.context["n"] >= 10)
    flow.edge("count", "count")

    @flow.after_completion
    def poison(hook: fg.HookContext) -> None:
        if hook.point == "node_exit" and hook.step == 4:
            hook.inject({"role": "user", "content": [{"type": "text", "text": object()}]})

    store = fg.SQLiteCheckpointer(tmp_path / "runs.db")
    with pytest.raises(fg.RunError, match=r"step 4 cannot be stored as JSON") as info:
        flow.run("go", context={"n": 0}, store=store)

    assert isinstance(info.value.__cause__, fg.StoreError)
    result = info.value.result
    assert result is not None
    stored = asyncio.run(store.load(result.run_id))
    assert stored is not None and stored.status == "failed"
    assert stored.step == 3 and stored.path == ["count"] * 3
    assert stored.context == json.dumps({"n": 3}, separators=(",", ":"))
    bad = next(i for i, m in enumerate(result.messages) if isinstance(m.get("content"), list))
    assert stored.messages == result.messages[: len(stored.messages)]
    assert len(stored.messages) <= bad  # nothing of step 4 or after


def test_steps_a_journal_holds_are_written_when_the_process_exits(tmp_path: Path) -> None:
    """A run leaves the process in the middle (SystemExit from a tool step): the steps
    its journal held for the store are written at exit, as buffered commits are."""
    path = tmp_path / "runs.db"
    script = (
        "import sys\n"
        "import flowgraph as fg\n"
        "def count(ctx):\n"
        "    ctx.context['n'] += 1\n"
        "    if ctx.context['n'] == 6:\n"
        "        sys.exit(0)\n"
        "flow = fg.Flow('leaves', max_steps=50)\n"
        "flow.edge(fg.START, fg.ToolStep('count', count))\n"
        "flow.edge('count', 'count')\n"
        "store = fg.SQLiteCheckpointer(sys.argv[1], quiet=60, max_wait=60)\n"
        "flow.run('go', context={'n': 0}, store=store, run_id='r1')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)

    stored = asyncio.run(fg.SQLiteCheckpointer(path).load("r1"))
    assert stored is not None and stored.status == "running"
    assert stored.path == ["count"] * 5  # the sixth never ended
    assert stored.context == '{"n":5}'
