"""A customer-support flow: triage, two specialists, a tool step, a hook.

Run it with ``make demo`` (or ``python examples/support.py``). With no
``OPENAI_API_KEY`` it runs on the bundled local model, SmolLM2-135M: a real but
tiny LLM, so expect odd answers; the flow's structure is the point. It prints the
path, what each desk did (tool calls, hand-offs, injected messages, answers), the
answer and any notes, and draws the graph and the run to ``out/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import flowgraph as fg

ORDERS = {
    "A-1": {"item": "kettle", "status": "delivered", "total": 39.0},
    "B-7": {"item": "lamp", "status": "in transit", "total": 25.0},
}


def lookup_order(order_id: str) -> dict[str, object]:
    """Look up an order by its id.

    Args:
        order_id: the order's id, such as A-1.
    """
    return ORDERS.get(order_id.strip().upper(), {"error": f"no order {order_id!r}"})


def issue_refund(order_id: str, ctx: fg.RunContext[dict[str, object]]) -> str:
    """Refund an order in full.

    Args:
        order_id: the order's id, such as A-1.
    """
    ctx.context["refunded"] = order_id
    return f"Refund issued for {order_id}."


def send_receipt(ctx: fg.RunContext[dict[str, object]]) -> str:
    """A plain Python step: no LLM. Its return value joins the conversation."""
    return f"Receipt e-mailed to {ctx.context.get('email', 'the customer')}."


def was_refunded(ctx: fg.RunContext[dict[str, object]]) -> bool:
    """A predicate edge: decided in Python, no LLM."""
    return "refunded" in ctx.context


def refund_instructions(ctx: fg.RunContext[dict[str, object]]) -> str:
    tone = "Be extra warm: this is a VIP." if ctx.context.get("vip") else "Be brief."
    return f"You are the refund desk. Refund the order the customer names. {tone}"


def build_flow(model: fg.Model | None = None) -> fg.Flow:
    """The support flow; ``model=None`` uses the default model."""
    triage = fg.Agent(
        "triage",
        "You are the triage desk of a web shop. Find out what the customer needs and "
        "hand them to the right desk.",
        tools=[lookup_order],
        max_turns=3,
    )
    refunds = fg.Agent("refunds", refund_instructions, tools=[issue_refund], max_turns=3)
    shipping = fg.Agent(
        "shipping",
        "You are the shipping desk. Tell the customer where their order is.",
        tools=[lookup_order],
        max_turns=3,
    )
    receipt = fg.ToolStep("receipt", send_receipt)

    flow = fg.Flow("support", model=model)
    flow.edge(fg.START, triage)
    flow.edge(triage, refunds, when="The customer wants money back.")
    flow.edge(triage, shipping, when="The customer asks where an order is.")
    flow.edge(triage, fg.END)
    flow.edge(refunds, receipt, when=was_refunded)
    flow.edge(refunds, fg.END)
    flow.edge(shipping, fg.END)
    flow.edge(receipt, fg.END)

    @flow.after_completion
    def refund_policy(hook: fg.HookContext) -> None:
        """At triage's exit, remind the next desk of the policy if money is involved."""
        asked = " ".join(str(m.get("content") or "") for m in hook.messages).lower()
        if hook.point == "node_exit" and hook.node == "triage" and "refund" in asked:
            hook.inject({"role": "system", "content": "Policy: refunds within 30 days."})

    return flow


def main(argv: list[str] | None = None, model: fg.Model | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "message",
        nargs="?",
        default="Hi, I want a refund for order A-1. The kettle arrived broken.",
    )
    parser.add_argument("--out", default="out", help="where to write the pictures")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    flow = build_flow(model)
    flow.render(str(out / "support.png"))
    print(f"graph:  {out / 'support.png'}")
    used = flow.model_of("triage")
    print(f"model:  {used.name}")
    if isinstance(used, fg.LocalModel):
        print(f"        {TINY_MODEL}")
    started = time.perf_counter()
    result = flow.run(args.message, context={"email": "ada@example.com", "vip": True})
    seconds = time.perf_counter() - started
    result.render(str(out / "support-run.png"))

    print(f"asked:  {args.message}")
    print(f"path:   {' -> '.join(['START', *result.path])}")
    print("what each desk did:")
    for line in what_happened(result):
        print(f"  {line}")
    print(f"answer: {result.output}  (the output of the last step, {result.path[-1]!r})")
    print(
        f"status: {result.status} ({result.reason}); {result.usage.requests} requests, "
        f"{result.usage.total_tokens} tokens, {seconds:.1f} s"
    )
    for note in result.notes:  # what did not stop the run, but matters: read these
        print(f"note:   {note}")
    print(f"run:    {out / 'support-run.png'}")
    return 0


TINY_MODEL = (
    "the bundled local model, tiny and often wrong (135M parameters): it is here to\n"
    "        show the machinery working offline; set OPENAI_API_KEY for a real model"
)


def what_happened(result: fg.RunResult) -> list[str]:
    """One line per tool call, hand-off, injected message and answer, by the node that
    made it, read from the conversation: what a user needs to judge the run."""
    answers = {m["tool_call_id"]: m["content"] for m in result.messages if m["role"] == "tool"}
    lines: list[str] = []
    node = ""
    for message in result.messages[1:]:
        node = message.get("name", node)
        for call in message.get("tool_calls") or []:
            function = call["function"]
            answer = _clip(str(answers.get(call["id"], "(no answer)")), 50)
            lines.append(f"{node:9} {function['name']}({_arguments(function)}) -> {answer}")
        if message["role"] == "system":
            lines.append(f"{'(hook)':9} injected: {_clip(message['content'], 60)}")
        elif message["role"] == "assistant" and message.get("content"):
            lines.append(f"{node:9} said: {_clip(str(message['content']), 60)}")
    return _fold_repeats(lines)


def _arguments(function: dict[str, str]) -> str:
    try:
        arguments = json.loads(function["arguments"] or "{}")
    except json.JSONDecodeError:
        return _clip(function["arguments"], 40)
    return ", ".join(f"{name}={value!r}" for name, value in arguments.items())


def _fold_repeats(lines: list[str]) -> list[str]:
    """The same line twice or more in a row, once with ``(x3)``."""
    folded: list[str] = []
    count = 1
    for index, line in enumerate(lines):
        if index + 1 < len(lines) and lines[index + 1] == line:
            count += 1
            continue
        folded.append(f"{line}  (x{count})" if count > 1 else line)
        count = 1
    return folded


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
