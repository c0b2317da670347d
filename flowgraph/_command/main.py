"""The ``flowgraph`` command: draw, check and run a flow defined in a Python file.

A flow is named ``FILE.py:NAME``, where ``NAME`` is a ``flowgraph.Flow`` or a function
with no required arguments that returns one; ``FILE.py`` alone picks the file's only
module-level Flow::

    flowgraph render examples/support.py:build_flow -o support.svg
    flowgraph validate examples/support.py:build_flow
    flowgraph run examples/support.py:build_flow "Where is order B-7?" --json
    flowgraph runs list --store runs.db   # stored runs: list, show, resume (runs.py)
    python -m flowgraph --help            # the same command

Exit codes::

    0    success
    1    the run failed (flowgraph.RunError): the error and where it stopped go to stderr
    2    bad command line, file or attribute
    3    the flow is not valid (flowgraph.FlowValidationError)
    4    a configuration problem (flowgraph.ConfigurationError): graphviz's ``dot``
         missing, no model configured
    5    the run is waiting for a reply (a Human node): its prompt goes to stdout
    130  interrupted (Ctrl-C)

Expected errors are one message on stderr that names the file or node and the fix,
never a traceback. The commands share ``common.py``; ``load.py`` finds the flow a
command names, ``report.py`` prints a run's result, ``runs.py`` holds ``flowgraph runs``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import flowgraph as fg
from flowgraph._command.common import (
    EXAMPLE,
    EXIT_CODES,
    FORMATS,
    TARGET_HELP,
    CliError,
    add_command,
    count,
    positive_int,
)
from flowgraph._command.load import load_flow
from flowgraph._command.model import (
    MODEL_HELP,
    add_model_options,
    apply_model,
    check_model_options,
    check_ready,
)
from flowgraph._command.report import check_run_options, report_events, report_run
from flowgraph._command.runs import add_runs

if TYPE_CHECKING:
    from flowgraph._command.common import Commands

DESCRIPTION = """\
flowgraph: LLM multi-agent workflows as graphs you can run, test and draw.

Each command takes a flow defined in a Python file, named FILE.py:NAME, where NAME
is a flowgraph.Flow or a function with no required arguments that returns one
(e.g. examples/support.py:build_flow). FILE.py alone picks the file's only Flow."""
EPILOG = f"""\
examples:
  flowgraph render {EXAMPLE} -o support.svg
  flowgraph validate {EXAMPLE}
  flowgraph run {EXAMPLE} "Where is order B-7?"
  flowgraph run flow.py "Hi" --model llama3.1 --base-url http://localhost:11434/v1
  flowgraph runs list --store runs.db

{EXIT_CODES}

Run `flowgraph COMMAND --help` for a command's options."""
RENDER_EPILOG = f"""\
examples:
  flowgraph render {EXAMPLE}                  # writes support.svg here
  flowgraph render {EXAMPLE} -o flow.png --direction LR
  flowgraph render {EXAMPLE} -o - | less      # DOT text on stdout

{EXIT_CODES}"""
VALIDATE_EPILOG = f"""\
Checks the graph's structure (exit 3 when broken) and then that every agent and
LLM condition has a model to ask (exit 4 when none is set: give one with --model,
or set OPENAI_API_KEY). No request is made.

examples:
  flowgraph validate {EXAMPLE}
  flowgraph validate flow.py --model llama3.1 --base-url http://localhost:11434/v1

{EXIT_CODES}"""
RUN_EPILOG = f"""\
The answer goes to stdout (in a terminal, as the model writes it); the path taken
and the status go to stderr. With --json, the run's events go to stdout as they
happen, one JSON object a line (flowgraph.events); the last holds the result.

{MODEL_HELP}

examples:
  flowgraph run {EXAMPLE} "Where is order B-7?"
  flowgraph run {EXAMPLE} "Refund A-1" --context '{{"vip": true}}' --draw run.svg
  flowgraph run flow.py "Hi" --model gpt-4.1-mini --json
  flowgraph run flow.py "Hi" --model llama3.1 --base-url http://localhost:11434/v1
  echo "Hi" | flowgraph run flow.py -

{EXIT_CODES}"""


# -- the command line -------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flowgraph`` command; return its exit code.

    Args:
        argv: the arguments after the program name; by default ``sys.argv[1:]``.

    Example:
        >>> main(["validate", "examples/support.py:build_flow"])  # doctest: +SKIP
        flow 'support' is valid: 4 nodes, 8 edges
        0
    """
    args = build_parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        with _warnings_said_once():
            return command(args)
    except KeyboardInterrupt:
        print("flowgraph: interrupted", file=sys.stderr)
        return 130
    except CliError as exc:
        print(f"flowgraph: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        code = _exit_code(exc)
        if code is None:
            raise  # a bug, not a user's mistake: the traceback is what we need
        print(f"flowgraph: {exc}", file=sys.stderr)
        return code


@contextlib.contextmanager
def _warnings_said_once() -> Iterator[None]:
    """flowgraph's warnings as the command's other messages are said: one line each on
    stderr, once (validate() runs before a run and again inside it), without Python's
    file and line, which point into flowgraph."""
    said: set[str] = set()
    python_shows = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *where: Any, **how: Any) -> None:
        if not issubclass(category, fg.FlowgraphWarning):
            python_shows(message, category, *where, **how)
        elif str(message) not in said:
            said.add(str(message))
            print(f"flowgraph: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():  # which restores showwarning after
        warnings.showwarning = show
        yield


def _exit_code(exc: Exception) -> int | None:
    """The exit code of one of flowgraph's errors; None for anything else."""
    codes: list[tuple[type[Exception], int]] = [
        (fg.RunError, 1),
        (fg.FlowValidationError, 3),
        (fg.ConfigurationError, 4),
        (fg.UsageError, 2),
        (fg.FlowgraphError, 1),
    ]
    return next((code for kind, code in codes if isinstance(exc, kind)), None)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``flowgraph`` and its commands."""
    parser = argparse.ArgumentParser(
        prog="flowgraph",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"flowgraph {fg.__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_render(commands)
    _add_validate(commands)
    _add_run(commands)
    add_runs(commands)
    return parser


def _command(commands: Commands, name: str, summary: str, epilog: str) -> argparse.ArgumentParser:
    """A command that takes a flow, FILE.py[:NAME]."""
    parser = add_command(commands, name, summary, epilog)
    parser.add_argument("target", metavar="FILE.py[:NAME]", help=TARGET_HELP)
    return parser


def _add_render(commands: Commands) -> None:
    parser = _command(
        commands, "render", "draw the flow's graph (svg, png, pdf or DOT)", RENDER_EPILOG
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="the file to write; '-' prints DOT text to stdout (default: <flow name>.svg)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="the picture's format (default: the output's suffix; svg without -o)",
    )
    parser.add_argument(
        "--direction",
        choices=["TB", "LR", "BT", "RL"],
        default="TB",
        help="the layout: top to bottom, left to right, ... (default: TB)",
    )
    parser.add_argument(
        "--detail",
        choices=["full", "compact"],
        default="full",
        help="full: models, tools, nested chats drawn inside; compact: names only",
    )
    parser.set_defaults(command=render_command)


def _add_validate(commands: Commands) -> None:
    parser = _command(
        commands, "validate", "check the flow's graph, without running it", VALIDATE_EPILOG
    )
    add_model_options(parser)
    parser.set_defaults(command=validate_command)


def _add_run(commands: Commands) -> None:
    parser = _command(commands, "run", "run the flow on one input and print its answer", RUN_EPILOG)
    parser.add_argument("input", help="the user's message; '-' reads it from stdin")
    parser.add_argument("--context", metavar="JSON", help="the context variables, a JSON object")
    add_model_options(parser)
    parser.add_argument(
        "--max-steps", metavar="N", type=positive_int, help="the most node visits the run may make"
    )
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="commit the run after every step to this SQLite file, so that `flowgraph runs "
        "resume` can go on with it after a crash or a pause",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the run's events as they happen, one JSON object a line; the last "
        "(type run_finished) holds the whole result",
    )
    parser.add_argument("--draw", metavar="PATH", help="also draw the run over the graph to PATH")
    parser.set_defaults(command=run_command)


# -- the commands -----------------------------------------------------------------------


def render_command(args: argparse.Namespace) -> int:
    """``flowgraph render``: write the picture, print where."""
    flow = load_flow(args.target)
    if args.output == "-":
        _render_to_stdout(flow, args.format, direction=args.direction, detail=args.detail)
        return 0
    output = args.output or f"{_file_name(flow.name)}.{args.format or 'svg'}"
    flow.render(output, format=args.format, direction=args.direction, detail=args.detail)
    print(output)
    return 0


def _render_to_stdout(flow: fg.Flow, fmt: str | None, *, direction: str, detail: str) -> None:
    if fmt in (None, "dot"):
        sys.stdout.write(flow.to_dot(direction=direction, detail=detail))
        return
    # Flow.render writes files; a scratch one keeps `dot` errors and formats its own.
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"flow.{fmt}"
        flow.render(str(path), format=fmt, direction=direction, detail=detail)
        sys.stdout.flush()
        sys.stdout.buffer.write(path.read_bytes())
        sys.stdout.buffer.flush()


def _file_name(name: str) -> str:
    """A flow's name made safe as a file name in the current directory."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "flow"


def validate_command(args: argparse.Namespace) -> int:
    """``flowgraph validate``: say the flow is valid, or raise its problems; then
    that it has no model, if it has none."""
    check_model_options(args)
    flow = load_flow(args.target)
    apply_model(flow, args)
    valid = (
        f"flow {flow.name!r} is valid: {count(len(flow.nodes), 'node')}, "
        f"{count(len(flow.edges), 'edge')}"
    )
    check_ready(flow, said=valid)
    return 0


def _parse_context(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        context = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"--context is not valid JSON: {exc}; e.g. --context '{{\"vip\": true}}'"
        ) from exc
    if not isinstance(context, dict):
        raise CliError(
            f"--context must be a JSON object, not {type(context).__name__}: "
            "e.g. --context '{\"vip\": true}'"
        )
    return context


def run_command(args: argparse.Namespace) -> int:
    """``flowgraph run``: run the flow, print the answer (or the result as JSON)."""
    context = _parse_context(args.context)
    check_run_options(args)
    text = sys.stdin.read() if args.input == "-" else args.input
    flow = load_flow(args.target)
    apply_model(flow, args)
    check_ready(flow)
    if args.json or sys.stdout.isatty():  # the events, or the answers as they come
        return report_events(
            lambda: flow.stream(text, context=context, max_steps=args.max_steps, store=args.store),
            args,
        )
    return report_run(
        lambda: flow.run(text, context=context, max_steps=args.max_steps, store=args.store), args
    )
