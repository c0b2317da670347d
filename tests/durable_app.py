"""A child process for tests/test_durability.py: runs and resumes stored flows.

Usage: ``python tests/durable_app.py COMMAND FLOW --store PATH [options]``, where
COMMAND is ``run``, ``resume`` or ``many`` and FLOW is ``pay`` or ``refunds``. It
prints the result as one JSON line on stdout (``many``: one line per run).

The ``pay`` flow charges a customer in a tool whose side effect is written to
``<dir>/effects.txt`` once per idempotency key (every attempt goes to
``<dir>/attempts.txt``). If ``<dir>/crash-once`` exists, the tool removes it after
its effect and kills its own process with SIGKILL: a crash with nothing cleaned up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import flowgraph as fg

WORKDIR = Path(".")


def _append(path: Path, line: str) -> None:
    with path.open("a") as file:
        file.write(line + "\n")


def charge(amount: int, ctx: fg.RunContext) -> str:
    """Charge the customer."""
    key = ctx.idempotency_key
    _append(WORKDIR / "attempts.txt", key)
    effects = WORKDIR / "effects.txt"
    if key not in (effects.read_text().split() if effects.exists() else []):
        _append(effects, key)  # the side effect: once per key, however often we are called
    ctx.context["charged"] = amount
    marker = WORKDIR / "crash-once"
    if marker.exists():
        marker.unlink()
        os.kill(os.getpid(), signal.SIGKILL)
    return f"charged {amount}"


def pay_flow(url: str) -> fg.Flow:
    """cashier (calls charge, then answers) -> notify (answers) -> END."""
    model = fg.OpenAIModel("scripted", base_url=url, api_key="test", max_retries=0)
    cashier = fg.Agent("cashier", "Cashier.", tools=[charge])
    notify = fg.Agent("notify", "Notify.")
    flow = fg.Flow("pay", model=model)
    flow.edge(fg.START, cashier)
    flow.edge(cashier, notify)
    flow.edge(notify, fg.END)
    return flow


def said_yes(ctx: fg.RunContext) -> bool:
    return str(ctx.last_text(("user",))).lower() == "yes"


def approval_flow(url: str = "") -> fg.Flow:
    """approve (a human) -> pay when the reply is yes, else END."""
    ask = fg.Human("approve", prompt=lambda ctx: f"Refund {ctx.context['order']}?")
    pay = fg.ToolStep("pay", lambda ctx: f"paid {ctx.context['order']}")
    flow = fg.Flow("refunds")
    flow.edge(fg.START, ask)
    flow.edge(ask, pay, when=said_yes)
    flow.edge(ask, fg.END)
    flow.edge(pay, fg.END)
    return flow


def ship(ctx: fg.RunContext) -> str:
    """A tool step with a side effect keyed on the idempotency key (crash as charge)."""
    key = ctx.idempotency_key
    _append(WORKDIR / "attempts.txt", key)
    effects = WORKDIR / "effects.txt"
    if key not in (effects.read_text().split() if effects.exists() else []):
        _append(effects, key)
    marker = WORKDIR / "crash-once"
    if marker.exists():
        marker.unlink()
        os.kill(os.getpid(), signal.SIGKILL)
    return "shipped"


def routed_flow(url: str) -> fg.Flow:
    """triage hands off (an LLM decision) to ship, or to audit, which goes on to ship."""
    model = fg.OpenAIModel("scripted", base_url=url, api_key="test", max_retries=0)
    triage = fg.Agent("triage", "Triage.")
    flow = fg.Flow("routed", model=model)
    flow.edge(fg.START, triage)
    flow.edge(triage, fg.ToolStep("ship", ship), when="The order can ship.")
    flow.edge(triage, fg.ToolStep("audit", lambda: "audited"), when="The order needs an audit.")
    flow.edge("audit", "ship")
    flow.edge("ship", fg.END)
    return flow


def chaos_flow(url: str) -> fg.Flow:
    """triage hands off to cashier (charges, keyed), then ship (a keyed tool step that
    may kill its process after its effect), then notify: for the kill -9 chaos test."""
    model = fg.OpenAIModel("scripted", base_url=url, api_key="test", max_retries=0)
    flow = fg.Flow("chaos", model=model)
    triage = fg.Agent("triage", "Triage.")
    cashier = fg.Agent("cashier", "Cashier.", tools=[charge])
    notify = fg.Agent("notify", "Notify.")
    flow.edge(fg.START, triage)
    flow.edge(triage, cashier, when="The customer pays.")
    flow.edge(cashier, fg.ToolStep("ship", ship))
    flow.edge("ship", notify)
    flow.edge(notify, fg.END)
    return flow


FLOWS = {
    "pay": (pay_flow, "Charge me 5", {}),
    "chaos": (chaos_flow, "Charge me 5 and ship it", {}),
    "routed": (routed_flow, "Ship order A-1", {}),
    "refunds": (approval_flow, "Refund", {"order": "A-1"}),
}


def summary(result: fg.RunResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "status": result.status,
        "output": result.output,
        "path": result.path,
        "roles": [message["role"] for message in result.messages],
        "messages": result.messages,
        "context": result.context,
        "usage": result.usage.model_dump(),
        "prompt": result.waiting.prompt if result.waiting else None,
    }


def emit(data: Any) -> None:
    print(json.dumps(data), flush=True)


async def many(flow: fg.Flow, text: str, context: Any, count: int, store: str) -> None:
    """``count`` concurrent runs of ``flow``, each printed as it ends."""
    runs = (flow.arun(text, context=dict(context), store=store) for _ in range(count))
    for result in await asyncio.gather(*runs):
        emit({"run_id": result.run_id, "status": result.status})


def wait_for_go(path: str) -> None:
    """Say "ready", then wait until ``path`` exists: the test starts all children at once."""
    emit("ready")
    while not Path(path).exists():
        time.sleep(0.01)


def main(argv: list[str]) -> None:
    global WORKDIR
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run", "resume", "many"])
    parser.add_argument("flow", choices=list(FLOWS))
    parser.add_argument("--store", required=True)
    parser.add_argument("--url", default="")
    parser.add_argument("--dir", default=".")
    parser.add_argument("--run-id")
    parser.add_argument("--reply")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--go", default="")
    parser.add_argument("--announce", action="store_true", help='print "ready" first')
    args = parser.parse_args(argv)
    WORKDIR = Path(args.dir)
    build, text, context = FLOWS[args.flow]
    flow = build(args.url)
    if args.command == "many":
        wait_for_go(args.go)
        started = time.perf_counter()
        asyncio.run(many(flow, text, context, args.count, args.store))
        print(f"{args.count} runs in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    elif args.command == "run":
        if args.announce:
            emit("ready")
        emit(summary(flow.run(text, context=dict(context), run_id=args.run_id, store=args.store)))
    else:
        if args.announce:
            emit("ready")  # the kill -9 chaos test times its kills from here
        emit(summary(flow.resume(args.run_id, store=args.store, reply=args.reply)))


if __name__ == "__main__":
    main(sys.argv[1:])
