"""The ``flowgraph`` command: draw, check and run a flow defined in a Python file.

A flow is named ``FILE.py:NAME``, where ``NAME`` is a ``flowgraph.Flow`` or a function
with no required arguments that returns one; ``FILE.py`` alone picks the file's only
module-level Flow::

    flowgraph render examples/support.py:build_flow -o support.svg
    flowgraph validate examples/support.py:build_flow
    flowgraph run examples/support.py:build_flow "Where is order B-7?" --json
    flowgraph runs list --store runs.db   # stored runs: list, show, resume (_cli_runs.py)
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
never a traceback. flowgraph's API is imported inside the functions that use it, never
at this module's top (no networkx, graphviz or openai here), so that the parser adds
nothing to the package's own import.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowgraph import Flow, RunError, RunResult

    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

EXAMPLE = "examples/support.py:build_flow"
FORMATS = ("png", "svg", "pdf", "dot")
TARGET_HELP = (
    "the flow: FILE.py:NAME, NAME a flowgraph.Flow or a function with no required "
    "arguments that returns one; FILE.py alone picks the file's only Flow"
)
EXIT_CODES = """\
exit codes:
  0    success
  1    the run failed (the error and the node where it stopped go to stderr)
  2    bad command line, file or attribute
  3    the flow is not valid (flowgraph.FlowValidationError)
  4    a configuration problem: graphviz's `dot` missing, no model configured
  5    the run is waiting for a reply (a Human node): its prompt goes to stdout
  130  interrupted (Ctrl-C)"""
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
example:
  flowgraph validate {EXAMPLE}

{EXIT_CODES}"""
RUN_EPILOG = f"""\
The answer goes to stdout; the path taken and the status go to stderr.

--model replaces the flow's model (flow.model) with an OpenAI-compatible one;
agents and tool steps that set their own model keep it. Without --model the
flow's own model is used, else OpenAI when OPENAI_API_KEY is set, else the
bundled local model.

examples:
  flowgraph run {EXAMPLE} "Where is order B-7?"
  flowgraph run {EXAMPLE} "Refund A-1" --context '{{"vip": true}}' --draw run.svg
  flowgraph run flow.py "Hi" --model gpt-4.1-mini --json
  flowgraph run flow.py "Hi" --model llama3.1 --base-url http://localhost:11434/v1
  echo "Hi" | flowgraph run flow.py -

{EXIT_CODES}"""


class CliError(Exception):
    """A bad command line, file or attribute: exit 2 with this message."""


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


def _exit_code(exc: Exception) -> int | None:
    """The exit code of one of flowgraph's errors; None for anything else."""
    import flowgraph as fg

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
    from flowgraph import __version__
    from flowgraph._command.runs import add_runs

    parser = argparse.ArgumentParser(
        prog="flowgraph",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"flowgraph {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_render(commands)
    _add_validate(commands)
    _add_run(commands)
    add_runs(commands)
    return parser


def _command(commands: Commands, name: str, summary: str, epilog: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    parser.set_defaults(command=validate_command)


def _add_run(commands: Commands) -> None:
    parser = _command(commands, "run", "run the flow on one input and print its answer", RUN_EPILOG)
    parser.add_argument("input", help="the user's message; '-' reads it from stdin")
    parser.add_argument("--context", metavar="JSON", help="the context variables, a JSON object")
    parser.add_argument("--model", metavar="NAME", help="the model of the flow, e.g. gpt-4.1-mini")
    parser.add_argument(
        "--base-url", metavar="URL", help="an OpenAI-compatible server (with --model)"
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="the server's API key (with --model; default: $OPENAI_API_KEY)",
    )
    parser.add_argument(
        "--max-steps", metavar="N", type=_positive_int, help="the most node visits the run may make"
    )
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="commit the run after every step to this SQLite file, so that `flowgraph runs "
        "resume` can go on with it after a crash or a pause",
    )
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.add_argument("--draw", metavar="PATH", help="also draw the run over the graph to PATH")
    parser.set_defaults(command=run_command)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


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


def _render_to_stdout(flow: Flow, fmt: str | None, *, direction: str, detail: str) -> None:
    if fmt in (None, "dot"):
        sys.stdout.write(flow.to_dot(direction=direction, detail=detail))
        return
    import tempfile

    # Flow.render writes files; a scratch one keeps `dot` errors and formats its own.
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"flow.{fmt}"
        flow.render(str(path), format=fmt, direction=direction, detail=detail)
        sys.stdout.flush()
        sys.stdout.buffer.write(path.read_bytes())
        sys.stdout.buffer.flush()


def _file_name(name: str) -> str:
    """A flow's name made safe as a file name in the current directory."""
    import re

    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "flow"


def validate_command(args: argparse.Namespace) -> int:
    """``flowgraph validate``: say the flow is valid, or raise its problems."""
    flow = load_flow(args.target)
    flow.validate()
    print(
        f"flow {flow.name!r} is valid: {_count(len(flow.nodes), 'node')}, "
        f"{_count(len(flow.edges), 'edge')}"
    )
    return 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def run_command(args: argparse.Namespace) -> int:
    """``flowgraph run``: run the flow, print the answer (or the result as JSON)."""
    import flowgraph as fg

    context = _parse_context(args.context)
    _check_run_options(args)
    text = sys.stdin.read() if args.input == "-" else args.input
    flow = load_flow(args.target)
    if args.model is not None:
        flow.model = fg.OpenAIModel(args.model, base_url=args.base_url, api_key=args.api_key)
    return report_run(
        lambda: flow.run(text, context=context, max_steps=args.max_steps, store=args.store), args
    )


def report_run(start: Callable[[], RunResult], args: argparse.Namespace) -> int:
    """Call ``start`` (a run or a resume) and print its result; exit 0, 1 (failed) or 5
    (waiting for a reply). ``args`` needs ``json`` and ``draw``."""
    import flowgraph as fg

    try:
        result = start()
    except fg.RunError as exc:
        _report_failure(exc, args)
        return 1
    _report(result, args)
    return {"failed": 1, "waiting": 5}.get(result.status, 0)


def _check_run_options(args: argparse.Namespace) -> None:
    """Refuse a bad combination before the run: a run may cost requests."""
    if args.model is None and (args.base_url or args.api_key):
        option = "--base-url" if args.base_url else "--api-key"
        raise CliError(
            f"{option} needs --model, the model to ask there, e.g. "
            "--model llama3.1 --base-url http://localhost:11434/v1"
        )
    suffix = Path(args.draw or "").suffix.lstrip(".").lower()
    if suffix not in ("", *FORMATS):
        raise CliError(
            f"--draw {args.draw}: cannot draw as {suffix!r}; end the path in "
            f"{', '.join('.' + fmt for fmt in FORMATS)}"
        )


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


def _report_failure(exc: RunError, args: argparse.Namespace) -> None:
    """Say why and where the run stopped (stderr); still print and draw what it did."""
    import flowgraph as fg

    at = f" at node {exc.node!r}" if exc.node else ""
    print(f"flowgraph: the run failed{at}: {exc}", file=sys.stderr)
    cause = exc.__cause__
    if cause is not None and str(cause) not in str(exc):
        print(f"  caused by {type(cause).__name__}: {cause}", file=sys.stderr)
    if exc.result is None:
        return
    print(f"  path: {_path(exc.result)} (step {exc.result.steps})", file=sys.stderr)
    print(f"  run id: {exc.result.run_id}", file=sys.stderr)
    try:
        _report(exc.result, args)
    except fg.FlowgraphError as error:  # the run's failure is the news, not the drawing's
        print(f"flowgraph: could not draw the run: {error}", file=sys.stderr)


def _path(result: RunResult) -> str:
    return " -> ".join(["START", *result.path])


def _report(result: RunResult, args: argparse.Namespace) -> None:
    """Print the result (stdout) and draw it; in human mode the status goes to stderr."""
    if args.json:
        print(_result_json(result))
    elif result.status != "failed":
        if result.waiting is not None:
            print(result.waiting.prompt)  # a paused run's answer is its question
        elif result.output is not None:
            print(_output_text(result.output))
        print(f"path: {_path(result)}", file=sys.stderr)
        print(f"status: {result.status} ({result.reason}); {_usage(result)}", file=sys.stderr)
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
    if args.draw:
        result.render(args.draw)
        print(f"drawn: {args.draw}", file=sys.stderr)


def _output_text(output: object) -> str:
    if isinstance(output, str):
        return output
    from pydantic_core import to_jsonable_python

    # A tool step may return anything: JSON reads better than a repr, str() does for the rest.
    return json.dumps(to_jsonable_python(output, fallback=str), indent=2, ensure_ascii=False)


def _result_json(result: RunResult) -> str:
    from pydantic_core import PydanticSerializationError

    try:
        data = result.model_dump(mode="json")
    except PydanticSerializationError:
        # The context may hold anything the user put there; str() it rather than fail.
        return json.dumps(result.model_dump(), default=str, indent=2, ensure_ascii=False)
    return json.dumps(data, indent=2, ensure_ascii=False)


def _usage(result: RunResult) -> str:
    usage = result.usage
    return f"{usage.requests} requests, {usage.total_tokens} tokens, {result.steps} steps"


# -- finding the flow -------------------------------------------------------------------


def load_flow(target: str) -> Flow:
    """The flow ``target`` names: ``FILE.py:NAME`` or ``FILE.py``.

    Raises:
        CliError: no such file or attribute, or it is not a flow; the message says
            what the file does offer.
    """
    path, name = _split_target(target)
    module = _import_file(path)
    if name is None:
        return _only_flow(module, path)
    if not hasattr(module, name):
        raise CliError(f"{path} has no attribute {name!r}; {_offer(module, path)}")
    return _as_flow(getattr(module, name), f"{path}:{name}")


def _split_target(target: str) -> tuple[Path, str | None]:
    file, colon, name = target.rpartition(":")
    # A colon may belong to the path (C:\flows\x.py): only a name after it splits.
    if not colon or not (name.isidentifier() or file.endswith(".py")):
        return Path(target), None
    if not name.isidentifier():
        raise CliError(f"{name!r} in {target!r} is not a Python name: write FILE.py:NAME")
    return Path(file), name


def _import_file(path: Path) -> ModuleType:
    """Import the file as a module named after its stem, its directory first on sys.path."""
    import importlib.util

    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise CliError(f"{str(path)!r} {what}: give a Python file, e.g. {EXAMPLE}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise CliError(f"{str(path)!r} is not a Python file: give a .py file, e.g. {EXAMPLE}")
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))  # so that its sibling imports work
    # Registered for pydantic and dataclasses, which look their module up; never over
    # a module already loaded: a flow file named json.py must not replace json.
    sys.modules.setdefault(spec.name, module)
    _call_user_code(lambda: loader.exec_module(module), f"cannot load {path}", path)
    return module


def _call_user_code(fn: Callable[[], Any], failure: str, path: Path) -> Any:
    """Call the user's code; its exceptions become one line that says where."""
    import flowgraph as fg

    try:
        return fn()
    except fg.FlowgraphError:
        raise  # a broken flow (exit 3), a configuration problem (exit 4), ...
    except Exception as exc:
        raise CliError(f"{failure}: {_describe(exc, path)}") from exc


def _describe(exc: Exception, path: Path) -> str:
    """``ValueError: boom (x.py, line 3)``: the error and its last line in the user's file."""
    import traceback

    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc}"
    mine = path.resolve()
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == mine
    ]
    where = f" ({path}, line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _as_flow(value: object, where: str) -> Flow:
    """``value`` if it is a Flow; its result if it is a function that builds one."""
    import flowgraph as fg

    if isinstance(value, fg.Flow):
        return value
    if not callable(value):
        raise CliError(
            f"{where} is a {type(value).__name__}, not a flowgraph.Flow "
            "or a function that returns one"
        )
    required = _required_parameters(value)
    if required:
        raise CliError(
            f"{where} needs arguments ({', '.join(required)}): the command calls it with "
            "none; give them defaults, or name a function that needs none"
        )
    path = Path(where.rpartition(":")[0])
    built = _call_user_code(value, f"{where}() failed", path)
    if not isinstance(built, fg.Flow):
        raise CliError(f"{where}() returned a {type(built).__name__}, not a flowgraph.Flow")
    return built


def _required_parameters(fn: Callable[..., Any]) -> list[str]:
    import inspect

    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []  # no signature to read (a builtin): let the call tell
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in parameters if p.default is p.empty and p.kind not in variadic]


def _flows(module: ModuleType) -> dict[str, Flow]:
    """The module's Flow-valued attributes, each flow once (under its first name)."""
    import flowgraph as fg

    found: dict[int, tuple[str, Flow]] = {}
    for name, value in vars(module).items():
        if isinstance(value, fg.Flow) and not name.startswith("__"):
            found.setdefault(id(value), (name, value))
    return dict(found.values())


def _factories(module: ModuleType) -> list[str]:
    """The module's own functions annotated to return a Flow that need no arguments."""
    import inspect

    import flowgraph as fg

    names = []
    for name, value in vars(module).items():
        if inspect.isfunction(value) and value.__module__ == module.__name__:
            returns = inspect.signature(value).return_annotation
            named = isinstance(returns, str) and returns.rpartition(".")[2] == "Flow"
            if (returns is fg.Flow or named) and not _required_parameters(value):
                names.append(name)
    return names


def _offer(module: ModuleType, path: Path) -> str:
    """What the file offers instead, as the end of an error message."""
    names = [*_flows(module), *(f"{name}()" for name in _factories(module))]
    if not names:
        return "it defines no flowgraph.Flow, nor a function annotated `-> Flow`"
    return f"it has {', '.join(names)}: name one, e.g. {path}:{names[0].rstrip('()')}"


def _only_flow(module: ModuleType, path: Path) -> Flow:
    flows = _flows(module)
    if len(flows) == 1:
        return next(iter(flows.values()))
    if len(flows) > 1:
        raise CliError(f"{path} has several flows; {_offer(module, path)}")
    raise CliError(f"{path} has no module-level flowgraph.Flow; {_offer(module, path)}")
