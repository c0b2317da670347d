"""``flowgraph runs``: list, show and resume the runs kept in a store.

A run given ``store="runs.db"`` commits after every step, so it outlives its
process: one that paused for a human, failed or crashed can be looked at and
resumed from the shell::

    flowgraph runs list --store runs.db
    flowgraph runs show 3f2a9c... --store runs.db
    flowgraph runs resume flow.py 3f2a9c... --store runs.db --reply yes

The store is only read here (``resume`` appends the run's new commits); a path that
does not exist is an error, never a new empty file. Registered by ``main.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import flowgraph as fg
from flowgraph._base.bridge import run_sync
from flowgraph._command.common import (
    EXIT_CODES,
    TARGET_HELP,
    CliError,
    add_command,
    count,
    positive_int,
)
from flowgraph._command.load import load_flow
from flowgraph._command.model import MODEL_HELP, add_model_options, apply_model, check_ready
from flowgraph._command.report import check_run_options, report_events, report_run
from flowgraph._store.open import open_store
from flowgraph._store.protocol import find_runs
from flowgraph._store.records import run_info

if TYPE_CHECKING:
    from flowgraph._command.common import Commands
    from flowgraph._store.protocol import Checkpointer
    from flowgraph._store.records import Commit, RunInfo

PATH_WIDTH = 40
MATCHES_SHOWN = 10
LINE_WIDTH = 100
RUNS_HELP = "list, show and resume the runs kept in a store (a SQLite file)"
RUNS_DESCRIPTION = """\
List, show and resume the runs kept in a store.

A run given store="runs.db" (flow.run(..., store="runs.db") in Python) commits
after every step, so it outlives its process. A run that paused for a human waits
there for a reply; one that failed or whose process died can go on from its last
step. These commands read that file; `resume` goes on with a run."""
RUNS_EPILOG = f"""\
examples:
  flowgraph runs list --store runs.db                    # newest first
  flowgraph runs show 3f2a9c41 --store runs.db           # status, path, conversation
  flowgraph runs resume flow.py 3f2a9c41 --store runs.db --reply yes

{EXIT_CODES}

Run `flowgraph runs ACTION --help` for an action's options."""
LIST_EPILOG = """\
columns: the run's id (give it to `show` and `resume`), its flow, its status
(running: in flight, or its process died; waiting: for a reply; completed; failed),
the node visits made, the path taken, the time since its last step, and the
requests and tokens it used.

examples:
  flowgraph runs list --store runs.db
  flowgraph runs list --store runs.db --flow refunds --limit 5
  flowgraph runs list --store runs.db --json"""
SHOW_EPILOG = """\
examples:
  flowgraph runs show 3f2a9c41 --store runs.db
  flowgraph runs show 3f2a9c41 --store runs.db --json"""
RESUME_EPILOG = f"""\
Goes on from the run's last committed step, with the flow it ran on, and prints
the result as `flowgraph run` does: the answer on stdout, the path and status on
stderr. A run that pauses again prints its prompt and exits 5. A run started with
`flowgraph run --model ...` resumes with the same --model, --base-url and key.

{MODEL_HELP}

examples:
  flowgraph runs resume flow.py 3f2a9c41 --store runs.db --reply yes
  flowgraph runs resume flow.py:build_flow 3f2a9c41 --store runs.db   # after a crash
  echo "yes" | flowgraph runs resume flow.py 3f2a9c41 --store runs.db --reply -

{EXIT_CODES}"""


def add_runs(commands: Commands) -> None:
    """Register ``flowgraph runs`` and its actions."""
    parser = commands.add_parser(
        "runs",
        help=RUNS_HELP,
        description=RUNS_DESCRIPTION,
        epilog=RUNS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    _add_list(actions)
    _add_show(actions)
    _add_resume(actions)


def _action(actions: Commands, name: str, summary: str, epilog: str) -> argparse.ArgumentParser:
    """An action on a store of runs, ``--store PATH``."""
    parser = add_command(actions, name, summary, epilog)
    parser.add_argument(
        "--store",
        metavar="PATH",
        required=True,
        help="the SQLite file the runs were committed to (flow.run(..., store=PATH))",
    )
    return parser


def _add_list(actions: Commands) -> None:
    parser = _action(actions, "list", "list the stored runs, newest first", LIST_EPILOG)
    parser.add_argument("--flow", metavar="NAME", help="only the runs of this flow")
    parser.add_argument(
        "--limit", metavar="N", type=positive_int, default=20, help="at most N runs (default: 20)"
    )
    parser.add_argument("--json", action="store_true", help="print the runs as a JSON list")
    parser.set_defaults(command=list_command)


def _add_show(actions: Commands) -> None:
    parser = _action(
        actions, "show", "show one run: its status, path, usage and conversation", SHOW_EPILOG
    )
    parser.add_argument(
        "run_id",
        metavar="RUN_ID",
        help="the run's id, or its start (e.g. the 8 characters a picture shows)",
    )
    parser.add_argument("--json", action="store_true", help="print the run as JSON")
    parser.set_defaults(command=show_command)


def _add_resume(actions: Commands) -> None:
    parser = _action(
        actions, "resume", "go on with a stored run and print its answer", RESUME_EPILOG
    )
    parser.add_argument("target", metavar="FILE.py[:NAME]", help=TARGET_HELP)
    parser.add_argument(
        "run_id",
        metavar="RUN_ID",
        help="the run's id, or its start (e.g. the 8 characters a picture shows)",
    )
    parser.add_argument(
        "--reply",
        metavar="TEXT",
        help="the answer to a waiting run's prompt; '-' reads it from stdin",
    )
    add_model_options(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the run's events as they happen, one JSON object a line (as run --json)",
    )
    parser.add_argument("--draw", metavar="PATH", help="also draw the run over the graph to PATH")
    parser.set_defaults(command=resume_command)


# -- the actions ------------------------------------------------------------------------


def list_command(args: argparse.Namespace) -> int:
    """``flowgraph runs list``: a table of the runs, or a JSON list."""
    runs = run_sync(_open(args.store).list_runs(args.flow, args.limit))
    if args.json:
        print(json.dumps([info.model_dump(mode="json") for info in runs], indent=2))
    elif not runs:
        which = f" of flow {args.flow!r}" if args.flow else ""
        print(f"no runs{which} in {args.store}")
    else:
        print(_table(runs))
    return 0


def show_command(args: argparse.Namespace) -> int:
    """``flowgraph runs show``: one run in words, or as JSON."""
    store = _open(args.store)
    snapshot = run_sync(store.load(_run_id(store, args.run_id, args.store)))
    assert snapshot is not None  # found, and runs are never deleted
    info = run_info(snapshot)
    print(_show_json(snapshot, info) if args.json else _show_text(snapshot, info, args.store))
    return 0


def resume_command(args: argparse.Namespace) -> int:
    """``flowgraph runs resume``: go on with the run, print it as ``flowgraph run`` does."""
    _check_store(args.store)
    check_run_options(args)
    reply = sys.stdin.read().rstrip("\n") if args.reply == "-" else args.reply
    run_id = _run_id(_open(args.store), args.run_id, args.store)
    flow = load_flow(args.target)
    apply_model(flow, args)
    check_ready(flow)
    if args.json or sys.stdout.isatty():  # the events, or the answers as they come
        return report_events(
            lambda: flow.stream_resume(run_id, store=args.store, reply=reply), args
        )
    return report_run(lambda: flow.resume(run_id, store=args.store, reply=reply), args)


# -- the store ----------------------------------------------------------------------------


def _check_store(path: str) -> None:
    """Refuse a path that is not a file: opening it would create an empty store."""
    if not Path(path).is_file():
        what = "is a directory" if Path(path).is_dir() else "does not exist"
        raise CliError(
            f"the store {path!r} {what}: give the SQLite file the runs were committed to, "
            "e.g. --store runs.db for flow.run(..., store='runs.db')"
        )


def _run_id(store: Checkpointer, given: str, path: str) -> str:
    """The id of the one run whose id is or begins with ``given``."""
    found = run_sync(find_runs(store, given, limit=MATCHES_SHOWN + 1))
    if len(found) == 1:
        return found[0]
    if not found:
        raise CliError(
            f"there is no run {given!r} in the store {path!r}; "
            f"`flowgraph runs list --store {path}` lists its runs"
        )
    shown = ", ".join(found[:MATCHES_SHOWN]) + (", ..." if len(found) > MATCHES_SHOWN else "")
    raise CliError(
        f"{given!r} begins the ids of {'more than ' * (len(found) > MATCHES_SHOWN)}"
        f"{min(len(found), MATCHES_SHOWN)} runs in {path!r} ({shown}): give more of the id"
    )


def _open(path: str) -> Checkpointer:
    _check_store(path)
    try:
        store = open_store(path)
    except fg.ConfigurationError as exc:  # not a SQLite file: the path is the mistake
        raise CliError(str(exc)) from exc
    assert store is not None
    return store


# -- printing -----------------------------------------------------------------------------


def _table(runs: list[RunInfo]) -> str:
    rows = [["RUN ID", "FLOW", "STATUS", "STEPS", "PATH", "AGE", "REQUESTS", "TOKENS"]]
    for info in runs:
        usage = info.usage
        rows.append(
            [
                info.run_id,
                info.flow,
                info.status,
                str(info.step),
                _short_path(info.path),
                _age(info.age),
                str(usage.requests),
                str(usage.total_tokens),
            ]
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _short_path(path: list[str], width: int = PATH_WIDTH) -> str:
    """``a -> b -> c``; a long path keeps its first and last nodes around ``...``."""
    text = " -> ".join(path) or "-"
    if len(text) <= width or len(path) < 3:
        return _clip(text, width)
    return _clip(f"{path[0]} -> ... -> {path[-1]}", width)


def _age(seconds: float) -> str:
    """``42s``, ``3m``, ``2h``, ``5d``: the time since a run's last step."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())  # one line: newlines and runs of spaces become one space
    return text if len(text) <= width else text[: width - 3] + "..."


def _show_text(snapshot: Commit, info: RunInfo, store: str) -> str:
    usage = info.usage
    lines = [
        f"run:      {info.run_id}",
        f"flow:     {info.flow}",
        f"status:   {info.status}",
        f"reason:   {info.reason}",
        f"path:     {' -> '.join(['START', *info.path])}",
        f"usage:    {count(usage.requests, 'request')}, {count(usage.total_tokens, 'token')}, "
        f"{count(info.step, 'step')}",
        f"updated:  {_age(info.age)} ago",
    ]
    if info.parent:
        lines.append(f"forked from: {info.parent}")
    waiting = snapshot.waiting
    if waiting is not None:
        lines.append(f"waits for: a reply to {waiting.prompt!r} (at {waiting.node!r})")
    lines += ["", f"conversation ({len(snapshot.messages)} messages):"]
    lines += [f"  {_message_line(message)}" for message in snapshot.messages]
    if info.status != "completed":
        reply = " --reply TEXT" if waiting is not None else ""
        lines += ["", f"resume: flowgraph runs resume FILE.py {info.run_id} --store {store}{reply}"]
    return "\n".join(lines)


def _message_line(message: dict[str, Any]) -> str:
    """``role (name): content`` on one line, clipped; tool calls by name."""
    role = str(message.get("role", "?"))
    if message.get("name"):
        role += f" ({message['name']})"
    content = message.get("content")
    if not isinstance(content, str):  # a list of parts, or None beside tool calls
        content = json.dumps(content, default=str) if content else ""
    calls = [call.get("function", {}).get("name", "?") for call in message.get("tool_calls") or []]
    if calls:
        content = f"{content} [calls {', '.join(calls)}]".strip()
    return _clip(f"{role}: {content}", LINE_WIDTH)


def _show_json(snapshot: Commit, info: RunInfo) -> str:
    data = info.model_dump(mode="json")
    data["waiting"] = snapshot.waiting.model_dump() if snapshot.waiting else None
    data["output"] = snapshot.output
    data["context"] = json.loads(snapshot.context) if snapshot.context else None
    data["messages"] = snapshot.messages
    data["notes"] = snapshot.notes
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)
