"""The ``flowgraph`` command, run as a real subprocess on small flow files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flowgraph.testing import ScriptedServer

from .conftest import interruptible

STEPS = """
    import flowgraph as fg


    def greet(ctx: fg.RunContext) -> str:
        ctx.context["greeted"] = True
        return f"Hello, {ctx.context.get('who', 'world')}!"


    def sign(ctx: fg.RunContext) -> str:
        return f"{ctx.last_text()} Yours, the flow."


    flow = fg.Flow("greeting")
    flow.edge(fg.START, fg.ToolStep("greet", greet))
    flow.edge("greet", fg.ToolStep("sign", sign))
    flow.edge("sign", fg.END)
"""
BROKEN = """
    import flowgraph as fg

    flow = fg.Flow("broken")
    flow.edge(fg.START, fg.ToolStep("first", lambda: "one"))
    flow.edge("first", fg.END)
    flow.add(fg.ToolStep("orphan", lambda: "never"))
"""
FAILING = """
    import flowgraph as fg


    def post(ctx: fg.RunContext) -> str:
        raise ValueError("the ledger is locked")


    flow = fg.Flow("books")
    flow.edge(fg.START, fg.ToolStep("prepare", lambda: "ready"))
    flow.edge("prepare", fg.ToolStep("post", post))
    flow.edge("post", fg.END)
"""
AGENT = """
    import flowgraph as fg


    def build() -> fg.Flow:
        flow = fg.Flow("chat")
        flow.edge(fg.START, fg.Agent("assistant", "Answer briefly."))
        flow.edge("assistant", fg.END)
        return flow
"""
SLOW = """
    import asyncio
    import sys

    import flowgraph as fg


    async def wait() -> str:
        print("started", file=sys.stderr, flush=True)
        await asyncio.sleep(30)
        return "too late"


    flow = fg.Flow("slow")
    flow.edge(fg.START, fg.ToolStep("wait", wait))
    flow.edge("wait", fg.END)
"""


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def flowgraph(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m flowgraph ARGS`` and wait for it."""
    return subprocess.run(
        [sys.executable, "-m", "flowgraph", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
        input=stdin,
    )


@pytest.fixture
def steps(tmp_path: Path) -> Path:
    return write(tmp_path, "steps.py", STEPS)


# -- help -----------------------------------------------------------------------------


def test_help_names_each_command_with_an_example_and_the_exit_codes() -> None:
    done = flowgraph("--help")
    assert done.returncode == 0
    for command in ("render", "validate", "run"):
        assert f"flowgraph {command} examples/support.py:build_flow" in done.stdout
    assert "exit codes:" in done.stdout
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130"):
        assert f"\n  {code}" in done.stdout


def test_run_help_says_agents_keep_their_own_model() -> None:
    done = flowgraph("run", "--help")
    assert done.returncode == 0
    assert "agents and tool steps that set their own model keep it" in done.stdout
    assert "--base-url URL" in done.stdout


def test_version_through_the_installed_script() -> None:
    script = Path(sys.executable).parent / "flowgraph"
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "flowgraph 0.1.0\n")


# -- render ---------------------------------------------------------------------------


def test_render_svg(steps: Path, tmp_path: Path) -> None:
    out = tmp_path / "pictures" / "flow.svg"
    done = flowgraph("render", f"{steps}:flow", "-o", out)
    assert (done.returncode, done.stdout.strip()) == (0, str(out))
    svg = out.read_text()
    assert ET.fromstring(svg).tag.endswith("svg")
    assert "greet" in svg
    assert "sign" in svg


def test_render_png_left_to_right(steps: Path, tmp_path: Path) -> None:
    out = tmp_path / "flow.png"
    done = flowgraph("render", f"{steps}:flow", "-o", out, "--direction", "LR")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_render_dot_to_stdout(steps: Path) -> None:
    done = flowgraph("render", f"{steps}:flow", "-o", "-", "--detail", "compact")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("digraph greeting {")
    assert "greet" in done.stdout
    assert "rankdir=TB" in done.stdout


def test_render_defaults_to_the_flow_name_in_the_current_directory(steps: Path) -> None:
    work = steps.parent / "work"
    work.mkdir()
    done = flowgraph("render", steps, cwd=work)
    assert (done.returncode, done.stdout.strip()) == (0, "greeting.svg")
    assert ET.parse(work / "greeting.svg").getroot().tag.endswith("svg")


def test_render_without_graphviz_is_a_configuration_error(steps: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no `dot` on it
    done = flowgraph("render", f"{steps}:flow", "-o", tmp_path / "flow.png", env=env)
    assert done.returncode == 4
    assert "apt-get install graphviz" in done.stderr
    assert "Traceback" not in done.stderr


# -- validate -------------------------------------------------------------------------


def test_validate_a_valid_flow(steps: Path) -> None:
    done = flowgraph("validate", f"{steps}:flow")
    assert (done.returncode, done.stdout) == (0, "flow 'greeting' is valid: 2 nodes, 3 edges\n")


def test_validate_a_broken_flow_says_what_is_wrong(tmp_path: Path) -> None:
    done = flowgraph("validate", write(tmp_path, "broken.py", BROKEN))
    assert done.returncode == 3
    assert "flow 'broken' is not valid" in done.stderr
    assert "not reachable from START: ['orphan']" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_a_broken_flow_is_exit_3(tmp_path: Path) -> None:
    done = flowgraph("run", write(tmp_path, "broken.py", BROKEN), "hi")
    assert done.returncode == 3
    assert "orphan" in done.stderr


# -- run ------------------------------------------------------------------------------


def test_run_prints_the_answer_and_the_path(steps: Path) -> None:
    done = flowgraph("run", f"{steps}:flow", "hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello, world! Yours, the flow.\n"
    assert "path: START -> greet -> sign" in done.stderr
    assert "status: completed (reached END)" in done.stderr


def test_run_context_reaches_the_tool_steps(steps: Path) -> None:
    done = flowgraph("run", steps, "hi", "--context", '{"who": "Ada"}')
    assert (done.returncode, done.stdout) == (0, "Hello, Ada! Yours, the flow.\n")


def test_run_json_is_the_events_a_line_each_and_input_may_come_from_stdin(steps: Path) -> None:
    """Issue 18: --json prints the run's events as they happen, one JSON line each;
    the last, run_finished, holds the whole result."""
    done = flowgraph("run", steps, "-", "--json", "--context", '{"who": "Ada"}', stdin="piped\n")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["type"] for line in lines] == [
        "run_started",
        *["handoff", "node_entered", "node_exited"] * 2,
        "handoff",
        "run_finished",
    ]
    result = lines[-1]["result"]
    assert result["messages"][0] == {"role": "user", "content": "piped\n"}
    assert result["path"] == ["greet", "sign"]
    assert result["output"] == "Hello, Ada! Yours, the flow."
    assert result["context"] == {"who": "Ada", "greeted": True}
    assert result["status"] == "completed"


def test_run_draw_writes_the_run_as_svg(steps: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.svg"
    done = flowgraph("run", f"{steps}:flow", "hi", "--draw", out)
    assert done.returncode == 0, done.stderr
    assert f"drawn: {out}" in done.stderr
    assert ET.parse(out).getroot().tag.endswith("svg")


def test_run_an_agent_against_a_scripted_server(tmp_path: Path) -> None:
    flow_file = write(tmp_path, "chat.py", AGENT)
    with ScriptedServer(["Hello from the model"]) as server:
        done = flowgraph(
            "run",
            f"{flow_file}:build",
            "Say hello",
            "--model",
            "scripted",
            "--base-url",
            server.url,
            "--api-key",
            "test",
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello from the model\n"
    assert "path: START -> assistant" in done.stderr
    assert [request.model for request in server.requests] == ["scripted"]
    assert server.requests[0].messages[-1] == {"role": "user", "content": "Say hello"}


def test_a_failing_step_is_exit_1_naming_the_node(tmp_path: Path) -> None:
    done = flowgraph("run", write(tmp_path, "books.py", FAILING), "hi")
    assert done.returncode == 1
    assert "the run failed at node 'post'" in done.stderr
    assert "the ledger is locked" in done.stderr
    assert "path: START -> prepare -> post" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_ctrl_c_is_exit_130(tmp_path: Path) -> None:
    slow = write(tmp_path, "slow.py", SLOW)
    command = [sys.executable, "-m", "flowgraph", "run", str(slow), "hi"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with subprocess.Popen(command, **pipes, text=True, preexec_fn=interruptible) as p:
        assert p.stderr is not None
        assert p.stderr.readline() == "started\n"
        p.send_signal(signal.SIGINT)
        _, stderr = p.communicate(timeout=30)
    assert p.returncode == 130
    assert stderr == "flowgraph: interrupted\n"


# -- bad command lines ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing.py:flow", "'missing.py' does not exist: give a Python file"),
        ("steps.py:flw", "steps.py has no attribute 'flw'; it has flow: name one"),
        ("steps.py:greet", "steps.py:greet needs arguments (ctx)"),
        ("steps.py:fg", "steps.py:fg is a module, not a flowgraph.Flow"),
        ("two.py", "two.py has several flows; it has first, second: name one, e.g. two.py:first"),
        (
            "crash.py",
            "cannot load crash.py: ZeroDivisionError: division by zero (crash.py, line 3)",
        ),
    ],
)
def test_a_bad_target_is_exit_2_with_a_hint(steps: Path, target: str, message: str) -> None:
    write(steps.parent, "two.py", "import steps\nfirst = steps.flow\nsecond = steps.fg.Flow('b')\n")
    write(steps.parent, "crash.py", "import flowgraph\n\nratio = 1 / 0\n")
    done = flowgraph("validate", target, cwd=steps.parent)
    assert done.returncode == 2
    assert done.stderr.startswith(f"flowgraph: {message}")
    assert "Traceback" not in done.stderr


def test_a_factory_function_and_a_sibling_import(tmp_path: Path) -> None:
    write(tmp_path, "helpers.py", "NAME = 'from-a-sibling'\n")
    source = "import flowgraph as fg\nfrom helpers import NAME\n\n\ndef make() -> fg.Flow:\n"
    source += "    flow = fg.Flow(NAME)\n    flow.edge(fg.START, fg.ToolStep('a', lambda: 1))\n"
    source += "    flow.edge('a', fg.END)\n    return flow\n"
    flow_file = write(tmp_path, "factory.py", source)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = flowgraph("validate", f"{flow_file}:make", cwd=elsewhere)
    assert (done.returncode, done.stdout) == (
        0,
        "flow 'from-a-sibling' is valid: 1 node, 2 edges\n",
    )
    named = flowgraph("validate", flow_file, cwd=elsewhere)
    assert named.returncode == 2
    assert "has no module-level flowgraph.Flow; it has make(): name one" in named.stderr


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ("{'who': 1}", "--context is not valid JSON: Expecting property name"),
        ("[1, 2]", "--context must be a JSON object, not list"),
    ],
)
def test_a_bad_context_is_exit_2(steps: Path, context: str, message: str) -> None:
    done = flowgraph("run", steps, "hi", "--context", context)
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--base-url", "http://127.0.0.1:1/v1"], "--base-url needs --model"),
        (["--draw", "run.txt"], "--draw run.txt: cannot draw as 'txt'"),
    ],
)
def test_bad_run_options_are_exit_2_before_running(
    steps: Path, options: list[str], message: str
) -> None:
    done = flowgraph("run", steps, "hi", *options)
    assert done.returncode == 2
    assert message in done.stderr
    assert "path:" not in done.stderr  # refused before the run


def test_argparse_usage_errors_are_exit_2(steps: Path) -> None:
    done = flowgraph("render", steps, "--direction", "UP")
    assert done.returncode == 2
    assert "invalid choice: 'UP'" in done.stderr


def test_the_api_key_can_come_from_a_file_out_of_process_listings(tmp_path: Path) -> None:
    """Issue 16, item 12: --api-key shows in `ps`; a file (or $OPENAI_API_KEY) does not."""
    flow_file = write(tmp_path, "chat.py", AGENT)
    key_file = tmp_path / "key.txt"
    key_file.write_text("sk-from-a-file\n")
    with ScriptedServer(["Hello from the model"]) as server:
        done = flowgraph(
            "run",
            f"{flow_file}:build",
            "Say hello",
            "--model",
            "scripted",
            "--base-url",
            server.url,
            "--api-key-file",
            str(key_file),
        )
    assert done.returncode == 0, done.stderr
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-a-file"
    shown = flowgraph("run", "--help").stdout
    assert "process listings" in shown and "--api-key-file" in shown

    missing = flowgraph(
        "run", f"{flow_file}:build", "hi", "--model", "m", "--api-key-file", "nowhere.txt"
    )
    assert missing.returncode == 2 and "--api-key-file nowhere.txt" in missing.stderr


def test_a_flowgraph_warning_is_one_line_said_once(tmp_path: Path) -> None:
    """Issue 17: `flowgraph run` printed the no-out-edge warning twice, each with a
    file and line inside flowgraph and the source line there."""
    flow_file = write(
        tmp_path,
        "forgetful.py",
        """
        import flowgraph as fg

        flow = fg.Flow("forgetful")
        flow.edge(fg.START, fg.ToolStep("billing", lambda: "billed"))
        """,
    )
    done = flowgraph("run", flow_file, "hi")
    assert (done.returncode, done.stdout) == (0, "billed\n")
    lines = done.stderr.splitlines()
    assert lines[0].startswith("flowgraph: warning: flow 'forgetful': node 'billing' has no")
    assert sum("warning" in line for line in lines) == 1
    assert "FlowgraphWarning" not in done.stderr and ".py:" not in done.stderr

    silenced = flowgraph("validate", flow_file, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert "warning" not in silenced.stderr


def test_in_a_terminal_the_answer_is_printed_as_the_model_writes_it(tmp_path: Path) -> None:
    """Issue 18: `flowgraph run` printed the answer only at the end."""
    import pty
    import select

    agent = write(tmp_path, "agent.py", AGENT)
    answer = "one two three four five six seven eight"
    with ScriptedServer([answer], stream_delay=0.2) as server:
        leader, follower = pty.openpty()
        command = [sys.executable, "-m", "flowgraph", "run", f"{agent}:build", "hi"]
        command += ["--model", "scripted", "--base-url", server.url, "--api-key", "k"]
        with subprocess.Popen(command, stdout=follower, stderr=subprocess.PIPE, text=True) as p:
            os.close(follower)
            assert select.select([leader], [], [], 60)[0], "nothing was printed"
            first = shown = os.read(leader, 1024)
            first_seen = time.monotonic()
            _, stderr = p.communicate(timeout=60)
            ended = time.monotonic()
            while select.select([leader], [], [], 0.5)[0]:
                try:
                    shown += os.read(leader, 1024)
                except OSError:  # the terminal's other end closed
                    break
        os.close(leader)

    assert p.returncode == 0, stderr
    assert answer.startswith(first.decode()) and len(first) < len(answer)  # a first piece
    assert ended - first_seen > 0.4, "the first words came only at the end"
    text = shown.decode().replace("\r\n", "\n")
    assert text.count(answer) == 1 and text.endswith(answer + "\n")  # not printed twice
    assert "path: START -> assistant" in stderr
