"""Printing a run's result as ``flowgraph run`` and ``flowgraph runs resume`` do: the
answer on stdout (in a terminal, as it is written), the path and status on stderr (or
with ``--json`` the run's events, one JSON line each), the run drawn if asked; exit 0,
1 (failed) or 5 (waiting for a reply)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

import flowgraph as fg
from flowgraph._command.common import FORMATS, CliError
from flowgraph._command.model import check_model_options


def report_events(start: Callable[[], Iterator[Any]], args: argparse.Namespace) -> int:
    """Stream ``start`` (``flow.stream`` or ``flow.stream_resume``): with ``--json`` one
    JSON event a line on stdout (the last, ``run_finished``, holds the result); else
    the answers as they are written; then as ``report_run``."""
    said = _Said()
    result: fg.RunResult | None = None
    try:
        for event in start():
            if args.json:
                print(event.model_dump_json(), flush=True)
            else:
                said.show(event)
            if event.type == "run_finished":
                result = event.result
    except fg.RunError as exc:
        said.end()
        _report_failure(exc, args, streamed=True)
        return 1
    said.end()
    assert result is not None  # run_finished is always last
    _report(result, args, streamed=said.last)
    return {"failed": 1, "waiting": 5}.get(result.status, 0)


class _Said:
    """The answers of a streamed run on stdout, as the model writes them: a line
    between two nodes' answers."""

    def __init__(self) -> None:
        self.path: list[str] | None = None
        self.last = ""  # the text of the last answer shown
        self.open = False  # the last line has no line break yet

    def show(self, event: Any) -> None:
        if event.type == "text_delta":
            if event.path != self.path:
                self.end()
                self.path, self.last = event.path, ""
            sys.stdout.write(event.delta)
            sys.stdout.flush()
            self.last += event.delta
            self.open = not event.delta.endswith("\n")
        elif event.type in ("node_exited", "request_retried"):
            self.end()
            if event.type == "request_retried":
                print(f"(the request was sent again: {event.error})", file=sys.stderr)
                self.path = None

    def end(self) -> None:
        if self.open:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.open = False


def report_run(start: Callable[[], fg.RunResult], args: argparse.Namespace) -> int:
    """Call ``start`` (a run or a resume) and print its result; exit 0, 1 (failed) or 5
    (waiting for a reply). ``args`` needs ``json`` and ``draw``."""
    try:
        result = start()
    except fg.RunError as exc:
        _report_failure(exc, args)
        return 1
    _report(result, args)
    return {"failed": 1, "waiting": 5}.get(result.status, 0)


def check_run_options(args: argparse.Namespace) -> None:
    """Refuse a bad combination before the run: a run may cost requests."""
    check_model_options(args)
    suffix = Path(args.draw or "").suffix.lstrip(".").lower()
    if suffix not in ("", *FORMATS):
        raise CliError(
            f"--draw {args.draw}: cannot draw as {suffix!r}; end the path in "
            f"{', '.join('.' + fmt for fmt in FORMATS)}"
        )


def _report_failure(exc: fg.RunError, args: argparse.Namespace, streamed: bool = False) -> None:
    """Say why and where the run stopped (stderr); still print and draw what it did."""
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
        _report(exc.result, args, streamed="" if streamed else None)
    except fg.FlowgraphError as error:  # the run's failure is the news, not the drawing's
        print(f"flowgraph: could not draw the run: {error}", file=sys.stderr)


def _path(result: fg.RunResult) -> str:
    return " -> ".join(["START", *result.path])


def _report(result: fg.RunResult, args: argparse.Namespace, streamed: str | None = None) -> None:
    """Print the result (stdout) and draw it; in human mode the status goes to stderr.
    ``streamed``: the run was streamed, and this text was its last answer shown."""
    if args.json:
        if streamed is None:  # streamed, its run_finished line held the result
            print(_result_json(result))
    elif result.status != "failed":
        if result.waiting is not None:
            print(result.waiting.prompt)  # a paused run's answer is its question
        elif result.output is not None and result.output != streamed:
            print(_output_text(result.output))
        print(f"path: {_path(result)}", file=sys.stderr)
        print(f"status: {result.status} ({result.reason}); {_usage(result)}", file=sys.stderr)
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        if result.waiting is not None and args.store:
            print(f"reply: {_resume_line(result, args)}", file=sys.stderr)
    if args.draw:
        result.render(args.draw)
        print(f"drawn: {args.draw}", file=sys.stderr)


def _resume_line(result: fg.RunResult, args: argparse.Namespace) -> str:
    """The command that answers a waiting run, with the model options it ran with."""
    words = [args.target, result.run_id, "--store", args.store]
    for option in ("model", "base_url"):
        if getattr(args, option, None):
            words += [f"--{option.replace('_', '-')}", getattr(args, option)]
    return f"flowgraph runs resume {shlex.join(words)} --reply TEXT"


def _output_text(output: object) -> str:
    if isinstance(output, str):
        return output
    # A tool step may return anything: JSON reads better than a repr, str() does for the rest.
    return json.dumps(to_jsonable_python(output, fallback=str), indent=2, ensure_ascii=False)


def _result_json(result: fg.RunResult) -> str:
    try:
        data = result.model_dump(mode="json")
    except PydanticSerializationError:
        # The context may hold anything the user put there; str() it rather than fail.
        return json.dumps(result.model_dump(), default=str, indent=2, ensure_ascii=False)
    return json.dumps(data, indent=2, ensure_ascii=False)


def _usage(result: fg.RunResult) -> str:
    usage = result.usage
    return f"{usage.requests} requests, {usage.total_tokens} tokens, {result.steps} steps"
