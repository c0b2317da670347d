"""Issue 16, item 8: a sync tool or step that outlives its timeout (or a Ctrl-C) must
not keep the process from exiting. Its thread cannot be stopped; it is abandoned, and
the process exits without waiting for it. Real child processes, timed by the wall."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from .conftest import interruptible

STUCK_STEP = """
    import sys, time
    import flowgraph as fg

    def stuck():
        print("started", file=sys.stderr, flush=True)
        time.sleep(60)

    flow = fg.Flow("stuck")
    flow.edge(fg.START, fg.ToolStep("stuck", stuck, timeout=0.5))
    flow.edge("stuck", fg.END)
"""

RUN_IT = """
    try:
        flow.run("go")
    except fg.RunError as error:
        print(error, flush=True)
"""


def child(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "stuck.py"
    path.write_text(textwrap.dedent(source))
    return path


def test_a_step_past_its_timeout_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    script = child(tmp_path, STUCK_STEP + RUN_IT)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    took = time.monotonic() - started

    assert done.returncode == 0, done.stderr
    assert "did not finish within 0.5 s" in done.stdout
    assert took < 20, f"the process took {took:.0f} s to exit: it waited for the thread"


def test_ctrl_c_in_a_sync_step_exits_at_once(tmp_path: Path) -> None:
    script = child(tmp_path, STUCK_STEP.replace("timeout=0.5", "timeout=None"))
    command = [sys.executable, "-m", "flowgraph", "run", f"{script}:flow", "go"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with subprocess.Popen(command, **pipes, text=True, preexec_fn=interruptible) as p:
        assert p.stderr is not None
        assert p.stderr.readline() == "started\n"
        interrupted = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, stderr = p.communicate(timeout=120)
        took = time.monotonic() - interrupted

    assert p.returncode == 130, stderr
    assert took < 20, f"Ctrl-C took {took:.0f} s: the process waited for the step's thread"
