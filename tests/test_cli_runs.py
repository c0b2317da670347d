"""``flowgraph runs``: list, show and resume stored runs, on a flow with Human nodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import flowgraph as fg
from flowgraph._command.main import main

from .test_stores import ListStore

FLOW = """\
import flowgraph as fg


def said_yes(ctx: fg.RunContext) -> bool:
    return str(ctx.last_text(("user",))).lower() == "yes"


def build_flow() -> fg.Flow:
    ask = fg.Human("approve", prompt=lambda ctx: f"Refund {ctx.context['order']}?")
    pay = fg.ToolStep("pay", lambda ctx: f"paid {ctx.context['order']}")
    receipt = fg.Human("receipt", prompt="Email the receipt?")
    flow = fg.Flow("refunds")
    flow.edge(fg.START, ask)
    flow.edge(ask, pay, when=said_yes)
    flow.edge(ask, fg.END)
    flow.edge(pay, receipt)
    flow.edge(receipt, fg.END)
    return flow
"""


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "refunds.py"
    path.write_text(FLOW)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


def start_run(flow_file: Path, store: Path, order: str = "A-1") -> str:
    """A run of the file's flow, paused at 'approve', committed to ``store``."""
    namespace: dict[str, object] = {}
    exec(compile(flow_file.read_text(), str(flow_file), "exec"), namespace)
    flow = namespace["build_flow"]()
    assert isinstance(flow, fg.Flow)
    result = flow.run("Refund please", context={"order": order}, store=store)
    assert result.status == "waiting"
    return result.run_id


def test_list_shows_a_table_newest_first(
    flow_file: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = start_run(flow_file, store, "A-1")
    second = start_run(flow_file, store, "B-2")

    assert main(["runs", "list", "--store", str(store)]) == 0

    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == [
        *["RUN", "ID", "FLOW", "STATUS", "STEPS", "PATH", "AGE", "REQUESTS", "TOKENS"]
    ]
    assert [row.split() for row in rows] == [
        [second, "refunds", "waiting", "1", "approve", "0s", "0", "0"],
        [first, "refunds", "waiting", "1", "approve", "0s", "0", "0"],
    ]


def test_list_as_json_filtered_and_limited(
    flow_file: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start_run(flow_file, store, "A-1")
    second = start_run(flow_file, store, "B-2")

    assert main(["runs", "list", "--store", str(store), "--limit", "1", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(run["run_id"], run["status"], run["path"]) for run in runs] == [
        (second, "waiting", ["approve"])
    ]

    assert main(["runs", "list", "--store", str(store), "--flow", "other"]) == 0
    assert capsys.readouterr().out == f"no runs of flow 'other' in {store}\n"


def test_show_says_what_the_run_waits_for(
    flow_file: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = start_run(flow_file, store)

    assert main(["runs", "show", run_id, "--store", str(store)]) == 0

    out = capsys.readouterr().out
    assert f"run:      {run_id}\n" in out
    assert "status:   waiting\n" in out
    assert "path:     START -> approve\n" in out
    assert "usage:    0 requests, 0 tokens, 1 step\n" in out
    assert "waits for: a reply to 'Refund A-1?' (at 'approve')\n" in out
    assert "  user: Refund please\n  assistant (approve): Refund A-1?\n" in out
    assert f"flowgraph runs resume FILE.py {run_id} --store {store} --reply TEXT" in out


def test_show_as_json(flow_file: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = start_run(flow_file, store)

    assert main(["runs", "show", run_id, "--store", str(store), "--json"]) == 0

    data = json.loads(capsys.readouterr().out)
    assert (data["run_id"], data["status"], data["path"]) == (run_id, "waiting", ["approve"])
    assert data["waiting"]["prompt"] == "Refund A-1?"
    assert data["context"] == {"order": "A-1"}
    assert data["messages"][0] == {"role": "user", "content": "Refund please"}


def test_resume_with_a_reply_pauses_again_with_exit_5_then_completes(
    flow_file: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = start_run(flow_file, store)
    command = ["runs", "resume", f"{flow_file}:build_flow", run_id, "--store", str(store)]

    assert main([*command, "--reply", "yes"]) == 5
    out, err = capsys.readouterr()
    assert out == "Email the receipt?\n"
    assert "path: START -> approve -> pay -> receipt\n" in err
    assert "status: waiting (waiting at 'receipt'" in err
    assert f"flowgraph runs resume {flow_file}:build_flow {run_id} --store" in err

    assert main([*command, "--reply", "no", "--json"]) == 0
    result = last_result(capsys.readouterr().out)
    assert (result["status"], result["path"]) == ("completed", ["approve", "pay", "receipt"])
    assert result["messages"][-1] == {"role": "user", "content": "no"}


def test_resume_a_completed_run_is_exit_2_with_flowgraphs_message(
    flow_file: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = start_run(flow_file, store)
    command = ["runs", "resume", f"{flow_file}:build_flow", run_id, "--store", str(store)]
    assert main([*command, "--reply", "no"]) == 0
    assert "status: completed (reached END)" in capsys.readouterr().err

    assert main([*command, "--reply", "no"]) == 2
    assert "has completed; nothing is left to resume" in capsys.readouterr().err


def test_unknown_run_id_is_exit_2(
    flow_file: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start_run(flow_file, store)

    assert main(["runs", "show", "nope", "--store", str(store)]) == 2
    assert "there is no run 'nope' in the store" in capsys.readouterr().err
    assert main(["runs", "resume", f"{flow_file}:build_flow", "nope", "--store", str(store)]) == 2
    assert "there is no run 'nope' in the store" in capsys.readouterr().err


@pytest.mark.parametrize("action", [["list"], ["show", "abc"], ["resume", "x.py", "abc"]])
def test_a_missing_store_is_exit_2_and_not_created(
    tmp_path: Path, action: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.db"

    assert main(["runs", *action, "--store", str(missing)]) == 2

    assert f"the store {str(missing)!r} does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_store_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database " * 100)

    assert main(["runs", "list", "--store", str(junk)]) == 2
    assert "cannot open the run store" in capsys.readouterr().err


def test_help_reads_well(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["runs", "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    for action in ("list", "show", "resume"):
        assert f"flowgraph runs {action} " in out
    assert "\n  5    the run is waiting for a reply" in out


def test_list_in_a_real_process(flow_file: Path, store: Path) -> None:
    run_id = start_run(flow_file, store)

    done = subprocess.run(
        [sys.executable, "-m", "flowgraph", "runs", "list", "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert run_id in done.stdout
    assert "waiting" in done.stdout


def test_run_with_a_store_pauses_and_runs_resume_finishes(
    flow_file: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"{flow_file}:build_flow"
    command = ["run", target, "Refund please", "--context", '{"order": "C-3"}']

    assert main([*command, "--store", str(store), "--json"]) == 5
    paused = last_result(capsys.readouterr().out)
    assert paused["status"] == "waiting"
    resume = ["runs", "resume", target, paused["run_id"], "--store", str(store), "--json"]
    assert main([*resume, "--reply", "no"]) == 0
    assert last_result(capsys.readouterr().out)["path"] == ["approve"]


def last_result(out: str) -> dict[str, Any]:
    """The result in the last of --json's event lines (run_finished)."""
    *_, waiting, finished = (json.loads(line) for line in out.splitlines())
    assert finished["type"] == "run_finished"
    if finished["result"]["status"] == "waiting":
        assert waiting["type"] == "waiting_for_reply"
    result: dict[str, Any] = finished["result"]
    return result


AGENTS = """\
import flowgraph as fg


def build_flow() -> fg.Flow:
    flow = fg.Flow("desk")
    flow.edge(fg.START, fg.Agent("drafter", "Draft a reply."))
    flow.edge("drafter", fg.Human("approve", prompt="Send it?"))
    flow.edge("approve", fg.Agent("sender", "Send the reply."))
    flow.edge("sender", fg.Agent("closer", "Close the ticket."))
    flow.edge("closer", fg.END)
    return flow
"""


@pytest.fixture
def agents_file(tmp_path: Path) -> Path:
    path = tmp_path / "desk.py"
    path.write_text(AGENTS)
    return path


def test_a_run_started_with_model_options_resumes_with_them(
    agents_file: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runs resume` had no --model, --base-url, --api-key: a run started with
    `flowgraph run --model ... --base-url ...` could not be resumed (issue 17, item 6)."""
    from flowgraph.testing import ScriptedServer

    target = f"{agents_file}:build_flow"
    with ScriptedServer(["Draft: sorry for the delay.", "Sent.", "Closed."]) as server:
        model = ["--model", "scripted", "--base-url", server.url, "--api-key", "test"]
        assert main(["run", target, "Reply to Ada", *model, "--store", str(store)]) == 5
        out, err = capsys.readouterr()
        assert out == "Send it?\n"
        (listed,) = json.loads(main_json(["runs", "list", "--store", str(store), "--json"], capsys))
        run_id = listed["run_id"]
        # The hint names the model options the run needs (never the key).
        assert (
            f"reply: flowgraph runs resume {target} {run_id} --store {store} "
            f"--model scripted --base-url {server.url} --reply TEXT"
        ) in err
        resume = ["runs", "resume", target, run_id, "--store", str(store), *model]
        assert main([*resume, "--reply", "yes"]) == 0
        assert capsys.readouterr().out == "Closed.\n"
        assert [request.model for request in server.requests] == ["scripted"] * 3


def main_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_validate_checks_structure_without_a_model_and_says_once_that_none_is_set(
    agents_file: Path, no_default_model: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """validate needed a model even to check the structure, failed every agent with
    exit 3 (the help says 4) and printed the same fix once per agent (items 6, 8)."""
    assert main(["validate", f"{agents_file}:build_flow"]) == 4
    out, err = capsys.readouterr()
    assert out == "flow 'desk' is valid: 4 nodes, 5 edges\n"
    assert err.startswith(
        "flowgraph: flow 'desk' has no model to run on: agent 'drafter', agent 'sender' and "
        "agent 'closer' need a model: no model is configured."
    )
    assert err.count("pip install 'flowgraph[local]'") == 1
    assert "--model NAME" in err

    assert main(["run", f"{agents_file}:build_flow", "hi"]) == 4
    assert "has no model to run on" in capsys.readouterr().err
    model = ["--model", "m", "--base-url", "http://127.0.0.1:9/v1"]
    assert main(["validate", f"{agents_file}:build_flow", *model]) == 0  # no request made
    assert capsys.readouterr().out == "flow 'desk' is valid: 4 nodes, 5 edges\n"


def test_validate_a_broken_flow_with_no_model_names_the_structure_first(
    tmp_path: Path, no_default_model: None, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(AGENTS.replace('flow.edge("closer", fg.END)', 'flow.edge("closr", fg.END)'))

    assert main(["validate", f"{broken}:build_flow"]) == 3
    err = capsys.readouterr().err
    assert "there is no node 'closr' (did you mean 'closer'?)" in err
    assert "no model" not in err


def test_show_and_resume_take_a_unique_prefix_of_the_run_id(
    flow_file: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runs show 3f2a9c41`: the 8 characters the pictures and the help show were
    refused (issue 17, item 7)."""
    run_id = start_run(flow_file, store)

    assert main(["runs", "show", run_id[:8], "--store", str(store)]) == 0
    assert f"run:      {run_id}\n" in capsys.readouterr().out
    resume = ["runs", "resume", f"{flow_file}:build_flow", run_id[:5], "--store", str(store)]
    assert main([*resume, "--reply", "no"]) == 0
    assert "status: completed" in capsys.readouterr().err


def test_an_ambiguous_prefix_lists_the_matches_and_an_exact_id_always_wins(
    flow_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, object] = {}
    exec(compile(flow_file.read_text(), str(flow_file), "exec"), namespace)
    flow = namespace["build_flow"]()
    assert isinstance(flow, fg.Flow)
    store = tmp_path / "named.db"
    for run_id in ("order-1", "order-10", "order-2", "other"):
        flow.run("Refund", context={"order": run_id}, run_id=run_id, store=store)

    assert main(["runs", "show", "order", "--store", str(store)]) == 2
    assert (
        "'order' begins the ids of 3 runs in "
        f"{str(store)!r} (order-1, order-10, order-2): "
        "give more of the id"
    ) in capsys.readouterr().err
    assert main(["runs", "show", "order-1", "--store", str(store)]) == 0  # exact, not ambiguous
    assert "run:      order-1\n" in capsys.readouterr().out
    assert main(["runs", "show", "ot", "--store", str(store)]) == 0
    assert "run:      other\n" in capsys.readouterr().out
    assert main(["runs", "show", "x", "--store", str(store)]) == 2
    assert "there is no run 'x' in the store" in capsys.readouterr().err


@pytest.mark.parametrize(
    "store",
    [fg.MemoryCheckpointer(), "runs.db", ListStore()],
    ids=["memory", "sqlite", "own store, read in full"],
)
def test_find_runs_by_prefix_in_every_store(store: object, tmp_path: Path) -> None:
    import asyncio

    from flowgraph._store.open import open_store
    from flowgraph._store.protocol import find_runs

    where = tmp_path / store if isinstance(store, str) else store
    checkpointer = open_store(where)  # type: ignore[arg-type]
    assert checkpointer is not None
    flow = fg.Flow("ids")
    flow.edge(fg.START, fg.ToolStep("noop", lambda: None))
    flow.edge("noop", fg.END)
    # Ranges end on the next character; after U+D7FF (then surrogates) and U+10FFFF
    # there is none, and every id is checked.
    ids = ["ab", "abc", "ab\ud7ffc", "a\U0010ffffb", "c\U0010ffffd", "d\ud7ffe", "b"]
    for run_id in ids:
        flow.run("x", run_id=run_id, store=checkpointer)

    def find(prefix: str, limit: int = 10) -> list[str]:
        return asyncio.run(find_runs(checkpointer, prefix, limit))

    assert find("") == sorted(ids)
    assert find("", limit=2) == sorted(ids)[:2]
    assert find("a") == sorted(ids)[:4]
    assert find("ab") == ["ab"]  # exactly one's id, and the start of others'
    assert find("abc") == ["abc"]
    assert find("a\U0010ffff") == ["a\U0010ffffb"]
    assert find("c\U0010ffff") == ["c\U0010ffffd"]
    assert find("d\ud7ff") == ["d\ud7ffe"]
    assert find("ab\ud7fe") == []
    assert find("bb") == []
