"""A hook that watches the conversation, runs a separate research flow, and injects
what it found: the after-completion pattern of openai-node's ``runTools``.

The support agent looks the policy up; when the lookup comes back empty, the hook
runs a research flow and injects its finding as a system message. It lands after
the tool result and before the agent's next request, so the agent answers with it.

    python examples/research_hook.py "Can I return a kettle after 40 days?"
"""

from __future__ import annotations

import sys

import flowgraph as fg

POLICIES = {"shipping": "Orders ship within 2 days."}


def lookup_policy(topic: str) -> str:
    """Look up the shop's written policy on a topic, such as shipping or returns.

    Args:
        topic: one word, such as "returns".
    """
    return POLICIES.get(topic.strip().lower(), "no policy found")


def build_research_flow(model: fg.Model | None = None) -> fg.Flow:
    researcher = fg.Agent(
        "researcher",
        "You research shop policies. Answer in one sentence: returns are accepted "
        "within 30 days of delivery, with the receipt.",
    )
    flow = fg.Flow("research", model=model)
    flow.edge(fg.START, researcher)
    flow.edge(researcher, fg.END)
    return flow


def build_flow(model: fg.Model | None = None) -> fg.Flow:
    support = fg.Agent(
        "support",
        "You answer customers of a web shop. Look policies up before answering.",
        tools=[lookup_policy],
        max_turns=4,
    )
    flow = fg.Flow("support", model=model)
    flow.edge(fg.START, support)
    flow.edge(support, fg.END)
    research = build_research_flow(model)

    @flow.after_completion
    async def research_when_stuck(hook: fg.HookContext) -> None:
        last = hook.messages[-1]
        stuck = last["role"] == "tool" and last["content"] == "no policy found"
        if stuck and not hook.context.get("researched"):
            hook.context["researched"] = True
            question = hook.messages[0]["content"]
            finding = await research.arun(f"Research this customer question: {question}")
            hook.inject({"role": "system", "content": f"Research finding: {finding.output}"})

    return flow


def main(argv: list[str]) -> int:
    question = argv[0] if argv else "Can I return a kettle after 40 days?"
    result = build_flow().run(question)
    for message in result.messages:
        calls = message.get("tool_calls")
        said = message.get("content") or (calls and f"calls {calls[0]['function']['name']}")
        print(f"{message['role']:>9}: {said}")
    print(f"researched: {result.context.get('researched', False)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
