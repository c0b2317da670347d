"""AG2's swarm nested-chat example, ported to flowgraph one to one.

A customer agent verifies the customer; once verified, it hands off to a nested
chat: a critic sums the conversation up in a few key words, then a poet writes a
poem about it. The poem joins the conversation, and the refund specialist takes
over. In AG2 this was ``ON_CONDITION(target={"chat_queue": [...]}, condition=...)``.

    python examples/nested_chats.py
"""

from __future__ import annotations

import sys

import flowgraph as fg


def verify_customer(customer_id: str, ctx: fg.RunContext[dict[str, object]]) -> str:
    """Verify the customer by their id.

    Args:
        customer_id: the customer's id, such as C-42.
    """
    ctx.context["verified"] = True
    return f"Customer {customer_id} is verified."


def refund_instructions(ctx: fg.RunContext[dict[str, object]]) -> str:
    # AG2's UpdateSystemMessage: instructions computed from the context variables.
    state = "verified" if ctx.context.get("verified") else "NOT verified"
    return f"You are the refund specialist. The customer is {state}. Confirm the refund."


def build_flow(model: fg.Model | None = None) -> fg.Flow:
    customer = fg.Agent(
        "customer_agent",
        "You verify customers. Ask for their customer id and verify it, then hand off.",
        tools=[verify_customer],
        max_turns=4,
    )
    critic = fg.Agent("critic", "You are a critic. Answer in a few key words.")
    poet = fg.Agent("poet", "You are a poet. Write four short lines.")
    refund = fg.Agent("refund_specialist", refund_instructions, max_turns=2)

    verify = fg.NestedChat(
        "verify",
        chats=[
            fg.Chat(
                critic,
                "Summarise the conversation into a few key words",
                summary="last_msg",
                carryover="all",  # AG2: carryover_config={"summary_method": "all"}
            ),
            fg.Chat(poet, "Write a poem about it.", max_turns=1),
        ],
    )

    flow = fg.Flow("refunds", model=model)
    flow.edge(fg.START, customer)
    flow.edge(customer, verify, when="After customer verification, check the refund.")
    flow.edge(customer, fg.END)  # AG2's AFTER_WORK: nothing else applies
    flow.edge(verify, refund)
    flow.edge(refund, fg.END)
    return flow


def main(argv: list[str]) -> int:
    message = argv[0] if argv else "Hi, I'm customer C-42 and I want a refund for my kettle."
    result = build_flow().run(message)
    print(f"path:   {' -> '.join(result.path)}")
    for chat in result.chats:
        print(f"chat {chat.index} ({chat.recipient}): {chat.message!r} -> {chat.summary!r}")
    print(f"answer: {result.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
