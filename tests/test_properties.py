"""Property tests: random graphs, random model replies, and what must hold of every run.

Whatever the graph and whatever the model says, a run either returns a result or
raises a ``FlowgraphError``; its conversation is a valid history; it never makes more
than ``max_steps`` node visits; it only walks declared edges; and its usage adds up.
The model here answers in process from a drawn list of replies (text, empty replies,
tool calls good and bad, hand-offs declared and not, router answers valid and not);
a smaller number of examples goes through the real HTTP scripted server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph._base.messages import HistoryError, check_history
from flowgraph._base.result import StepRecord
from flowgraph._store.records import usage_of
from flowgraph.stores import Commit
from flowgraph.testing import ChatRequest, Reply, ScriptedServer, ToolCall

# -- the tools, tool steps and predicates graphs are built from ---------------------------


def lookup(order_id: str) -> str:
    """Look up an order by its id."""
    return f"order {order_id}: shipped"


async def toggle(n: int, ctx: fg.RunContext[dict[str, Any]]) -> str:
    """Flip the context flag when n is odd."""
    ctx.context["flag"] = bool(ctx.context.get("flag")) ^ (n % 2 == 1)
    ctx.context["count"] = ctx.context.get("count", 0) + 1
    return f"flag is {ctx.context['flag']}"


def explode(reason: str = "boom") -> str:
    """A tool that always fails."""
    raise RuntimeError(reason)


TOOLS: dict[str, Callable[..., Any]] = {"lookup": lookup, "toggle": toggle, "explode": explode}
GOOD_ARGS: dict[str, dict[str, Any]] = {
    "lookup": {"order_id": "A-1"},
    "toggle": {"n": 1},
    "explode": {"reason": "kaboom"},
}


def stamp(ctx: fg.RunContext[dict[str, Any]]) -> dict[str, Any]:
    ctx.context["count"] = ctx.context.get("count", 0) + 1
    return {"count": ctx.context["count"]}


def silent(ctx: fg.RunContext[dict[str, Any]]) -> None:
    ctx.context["flag"] = not ctx.context.get("flag")


async def greet(ctx: fg.RunContext[dict[str, Any]]) -> str:
    await asyncio.sleep(0)
    return f"hello after {len(ctx.messages)} messages"


def fail(ctx: fg.RunContext[dict[str, Any]]) -> str:
    raise ValueError("the tool step failed")


def constant() -> str:
    return "a constant"


STEPS: dict[str, Callable[..., Any]] = {
    "stamp": stamp,
    "silent": silent,
    "greet": greet,
    "fail": fail,
    "constant": constant,
}


def flag_set(ctx: fg.RunContext[dict[str, Any]]) -> bool:
    return bool(ctx.context.get("flag"))


def long_talk(ctx: fg.RunContext[dict[str, Any]]) -> bool:
    return len(ctx.messages) > 6


async def even_step(ctx: fg.RunContext[dict[str, Any]]) -> bool:
    return ctx.step % 2 == 0


def broken(ctx: fg.RunContext[dict[str, Any]]) -> bool:
    return bool(ctx.context["missing"])


PREDICATES: dict[str, Callable[..., Any]] = {
    "flag_set": flag_set,
    "long_talk": long_talk,
    "even_step": even_step,
    "broken": broken,
}

# -- graph specs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSpec:
    name: str
    kind: str  # "agent", "step" or "human"
    tools: tuple[str, ...] = ()
    max_turns: int = 1
    fn: str = "stamp"


@dataclass(frozen=True)
class EdgeSpec:
    source: str
    target: str
    when: str | None  # None, "llm:<text>" or "pred:<name>"


@dataclass(frozen=True)
class GraphSpec:
    nodes: tuple[NodeSpec, ...]
    edges: tuple[EdgeSpec, ...]
    inject: bool = False  # an after_completion hook that injects a message after tool results


@st.composite
def node_specs(draw: st.DrawFn, name: str) -> NodeSpec:
    kind = draw(st.sampled_from(["agent", "agent", "agent", "step", "step", "human"]))
    if kind == "agent":
        tools = draw(st.lists(st.sampled_from(sorted(TOOLS)), unique=True, max_size=3))
        return NodeSpec(name, kind, tuple(tools), draw(st.integers(1, 3)))
    if kind == "step":
        return NodeSpec(name, kind, fn=draw(st.sampled_from(sorted(STEPS))))
    return NodeSpec(name, kind)


conditions = st.one_of(
    st.none(),
    st.sampled_from(["llm:the customer wants money back", "llm:the order is lost", 'llm:"x"']),
    st.sampled_from([f"pred:{name}" for name in PREDICATES]),
)


@st.composite
def graph_specs(draw: st.DrawFn) -> GraphSpec:
    count = draw(st.integers(1, 4))
    nodes = tuple(draw(node_specs(f"n{i}")) for i in range(count))
    names = [node.name for node in nodes]
    # Each node gets an edge from START or an earlier node, so that most graphs are valid.
    edges = [
        EdgeSpec(draw(st.sampled_from(["START", *names[:i]])), name, draw(conditions))
        for i, name in enumerate(names)
    ]
    # Then more edges, their endpoints now and then ones that validation must refuse.
    sources = _mostly(["START", *names], ["END", "ghost"])
    targets = _mostly([*names, "END"], ["START", "ghost"])
    edges += draw(st.lists(st.builds(EdgeSpec, sources, targets, conditions), max_size=6))
    order = draw(st.permutations(range(len(edges))))
    edges = [edges[i] for i in order]
    if draw(st.integers(0, 9)) != 4:  # usually: no second fallback or LLM condition on one edge
        edges = _deduplicated(edges)
    return GraphSpec(nodes, tuple(edges), draw(st.booleans()))


def _deduplicated(edges: list[EdgeSpec]) -> list[EdgeSpec]:
    """Turn a second fallback from a node, or a second LLM condition between two nodes,
    into a predicate edge."""
    seen: set[tuple[str, str]] = set()
    out = []
    for edge in edges:
        key = (edge.source, "") if edge.when is None else (edge.source, edge.target)
        if edge.when is None or edge.when.startswith("llm:"):
            if key in seen:
                edge = EdgeSpec(edge.source, edge.target, "pred:flag_set")
            seen.add(key)
        out.append(edge)
    return out


def _mostly(common: list[str], rare: list[str]) -> st.SearchStrategy[str]:
    # Not at n == 0: hypothesis favours the ends of a range.
    return st.integers(0, 29).flatmap(lambda n: st.sampled_from(rare if n == 13 else common))


def build(spec: GraphSpec, model: fg.Model | None) -> fg.Flow:
    flow = fg.Flow("prop", model=model)
    made: dict[str, fg.Node] = {}
    for node in spec.nodes:
        if node.kind == "agent":
            tools = [TOOLS[name] for name in node.tools]
            made[node.name] = fg.Agent(
                node.name, f"You are {node.name}.", tools=tools, max_turns=node.max_turns
            )
        elif node.kind == "step":
            made[node.name] = fg.ToolStep(node.name, STEPS[node.fn])
        else:
            made[node.name] = fg.Human(node.name, prompt="Go on?")
    flow.add(*made.values())
    if spec.inject:
        flow.after_completion(note_tool_results)
    for edge in spec.edges:
        when: Any = None
        if edge.when is not None:
            kind, _, text = edge.when.partition(":")
            when = text if kind == "llm" else PREDICATES[text]
        flow.edge(_end(edge.source, made), _end(edge.target, made), when=when)
    return flow


def note_tool_results(hook: fg.HookContext) -> None:
    if hook.messages and hook.messages[-1]["role"] == "tool":
        hook.inject({"role": "system", "content": f"Noted at {hook.node} ({hook.point})."})


def _end(name: str, made: dict[str, fg.Node]) -> fg.Node | str:
    if name == "START":
        return fg.START
    if name == "END":
        return fg.END
    return made.get(name, name)


# -- model replies --------------------------------------------------------------------------

# A reply is a tuple, so that a failing example prints as something readable:
#   ("text", s) | ("empty",) | ("calls", content, (call, ...)) | ("route", k) | ("garbage", s)
# and a call is ("tool", name, args) | ("transfer", target) | ("unknown", name).
ARGS = ["good", "bad_type", "bad_json", "none"]

calls = st.one_of(
    st.tuples(st.just("tool"), st.sampled_from(sorted(TOOLS)), st.sampled_from(ARGS)),
    st.tuples(st.just("transfer"), st.sampled_from(["n0", "n1", "n2", "n3", "END", "nowhere"])),
    st.tuples(st.just("unknown"), st.sampled_from(["frobnicate", "transfer_to_", "lookup2"])),
)
replies = st.one_of(
    st.tuples(st.just("text"), st.sampled_from(["Done.", "Let me think.", "ok"])),
    st.tuples(st.just("empty")),
    st.tuples(
        st.just("calls"),
        st.sampled_from([None, "", "Calling."]),
        st.lists(calls, min_size=1, max_size=3).map(tuple),
    ),
    st.tuples(st.just("route"), st.integers(0, 5)),
    st.tuples(st.just("route"), st.integers(0, 5)),
    st.tuples(st.just("garbage"), st.sampled_from(["{", '{"choice": "mars"}', "[]", "none"])),
)
reply_lists = st.lists(replies, max_size=12)


def call_parts(call: tuple[Any, ...]) -> tuple[str, str]:
    """A drawn call as (function name, arguments text)."""
    if call[0] == "transfer":
        return f"transfer_to_{call[1]}", "{}"
    if call[0] == "unknown":
        return call[1], "{}"
    name, args = call[1], call[2]
    text = {
        "good": json.dumps(GOOD_ARGS[name]),
        "bad_type": json.dumps({"order_id": ["x"], "n": "many", "reason": 3}),
        "bad_json": '{"order_id": "A-1"',
        "none": "",
    }[args]
    return name, text


def router_text(reply: tuple[Any, ...], choices: Sequence[str]) -> str:
    """What a reply says to a router request (structured output: the content only)."""
    if reply[0] == "route":
        return json.dumps({"choice": choices[reply[1] % len(choices)]}) if choices else "{}"
    if reply[0] in ("text", "garbage"):
        return str(reply[1])
    return ""


def choices_of(response_format: dict[str, Any]) -> list[str]:
    schema = response_format.get("json_schema", {}).get("schema", {})
    return list(schema.get("properties", {}).get("choice", {}).get("enum", []))


DONE: tuple[Any, ...] = ("text", "Done.")
NONE: tuple[Any, ...] = ("route", -1)  # the router's last choice: "none"


@dataclass
class Replayer:
    """Hands out the drawn replies in order, then "Done."; records what it was asked."""

    replies: list[tuple[Any, ...]]
    requests: list[dict[str, Any]] = field(default_factory=list)
    handed: int = 0

    def next(self, messages: list[Any], tools: Any, response_format: Any) -> tuple[Any, ...]:
        self.requests.append({"messages": messages, "tools": tools, "format": response_format})
        if self.handed < len(self.replies):
            reply = self.replies[self.handed]
        else:
            reply = DONE if response_format is None else NONE
        self.handed += 1
        return reply


class ReplayModel:
    """An in-process ``fg.Model`` answering from a ``Replayer``."""

    name = "replay"

    def __init__(self, replies: list[tuple[Any, ...]]) -> None:
        self.replayer = Replayer(replies)
        self.ids = itertools.count()
        self.usage = fg.Usage()
        self.by_node: dict[str, fg.Usage] = {}

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> fg.Completion:
        reply = self.replayer.next(list(messages), tools, response_format)
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if response_format is not None:
            message["content"] = router_text(reply, choices_of(response_format))
        elif reply[0] == "calls":
            message["content"] = reply[1]
            message["tool_calls"] = [self._call(call) for call in reply[2]]
        elif reply[0] != "empty":
            message["content"] = router_text(reply, ["n0", "none"])
        usage = fg.Usage(requests=1, prompt_tokens=len(messages), completion_tokens=len(reply))
        self.usage.add(usage)
        self.by_node.setdefault(asker(messages[0]), fg.Usage()).add(usage)
        return fg.Completion(message, usage)

    def _call(self, call: tuple[Any, ...]) -> dict[str, Any]:
        name, arguments = call_parts(call)
        function = {"name": name, "arguments": arguments}
        return {"id": f"call_{next(self.ids)}", "type": "function", "function": function}


def asker(system: dict[str, Any]) -> str:
    """The node a request is for: an agent's system message names it, as does a router's."""
    text = str(system.get("content"))
    found = re.search(r"after its step '([^']+)'", text) or re.match(r"You are (\w+)\.", text)
    assert found is not None, f"a request from no node: {text!r}"
    return found.group(1)


def http_answer(reply: tuple[Any, ...], request: ChatRequest) -> Reply:
    """The same reply, as the scripted HTTP server sends it."""
    if request.response_format is not None:
        return Reply(content=router_text(reply, choices_of(request.response_format)))
    if reply[0] == "calls":
        return Reply(content=reply[1], tool_calls=[ToolCall(*call_parts(c)) for c in reply[2]])
    if reply[0] == "empty":
        return Reply()
    return Reply(content=router_text(reply, ["n0", "none"]))


# -- running and the properties -------------------------------------------------------------

Outcome = tuple[fg.RunResult, fg.RunError | None]


async def drive(flow: fg.Flow, max_steps: int, store: fg.Checkpointer | None) -> list[Outcome]:
    """Run the flow, and resume it (up to three times) while it waits for a human.
    Any exception that is not a ``FlowgraphError`` escapes and fails the test."""
    outcomes: list[Outcome] = []
    context = {"flag": False, "count": 0}
    run_id = None
    for attempt in range(4):
        error: fg.FlowgraphError | None = None
        try:
            if run_id is None:
                result = await flow.arun("Hi", context=context, max_steps=max_steps, store=store)
            else:
                result = await flow.aresume(
                    run_id, reply=f"yes {attempt}", store=store, max_steps=max_steps
                )
        except fg.FlowgraphError as exc:
            error = exc
        if error is not None:
            assert isinstance(error, fg.RunError), f"not a run error after validate: {error!r}"
            assert error.result is not None, f"a run error without its result: {error!r}"
            outcomes.append((error.result, error))
            return outcomes
        outcomes.append((result, None))
        if result.status != "waiting":
            return outcomes
        run_id = result.run_id
    return outcomes


def check_outcome(flow: fg.Flow, max_steps: int, result: fg.RunResult, error: Any) -> None:
    """Every property of one run's result (or of the failed run's ``error.result``)."""
    event(f"outcome: {result.status} {type(error).__name__ if error else ''}")
    if error is None:
        assert result.status in ("completed", "waiting"), result.status
    else:
        assert result.status == "failed"
        assert not isinstance(error.__cause__, HistoryError), f"broke the history: {error}"
    check_history(result.messages)
    check_steps(max_steps, result, error)
    check_path(flow, result)
    check_usage(flow, result, error)


def check_steps(max_steps: int, result: fg.RunResult, error: Any) -> None:
    assert len(result.path) <= max_steps
    traced = [record.node for record in result.trace]
    # A visit is traced when it ends: a failed or paused run's last visit has no record.
    unfinished = result.status == "waiting" or (
        error is not None and not isinstance(error, fg.MaxStepsExceeded)
    )
    assert traced == result.path or (unfinished and traced == result.path[:-1]), (traced, result)
    if isinstance(error, fg.MaxStepsExceeded):
        # Only past max_steps: all the allowed visits were made, and an edge was taken
        # to a node that would have been one more.
        # (result.steps is then max_steps + 1: see test_max_steps_exceeded_counts_only_*.)
        assert len(result.path) == max_steps
        assert result.trace and result.trace[-1].next not in (None, "END")
    else:
        assert result.steps == len(result.path)
        assert result.steps <= max_steps


def check_path(flow: fg.Flow, result: fg.RunResult) -> None:
    declared = {(edge.source, edge.target) for edge in flow.edges}
    walked = list(itertools.pairwise(["START", *result.path]))
    for pair in walked:
        assert pair in declared, f"took an undeclared edge {pair} in {result.path}"
    for record, after in itertools.pairwise(result.trace):
        assert record.next == after.node, (record, after)
    if result.status == "completed" and result.reason == "reached END":
        last = result.path[-1] if result.path else "START"
        assert (last, "END") in declared, f"reached END from {last!r} with no edge to it"


def check_usage(flow: fg.Flow, result: fg.RunResult, error: Any) -> None:
    total = fg.Usage()
    for usage in result.usage_by_node.values():
        total.add(usage)
    assert total == result.usage, (result.usage_by_node, result.usage)
    for name, usage in result.usage_by_node.items():
        traced = fg.Usage()
        for record in result.trace:
            if record.node == name:
                traced.add(record.usage)
        spent = (usage.requests, usage.prompt_tokens, usage.completion_tokens)
        steps = (traced.requests, traced.prompt_tokens, traced.completion_tokens)
        assert all(a <= b for a, b in zip(steps, spent, strict=True)), (name, traced, usage)
        # An agent's requests are all made in its visits, so its step records hold
        # them all; a router's request is made after the step: see test_router_usage_*.
        node = flow.nodes.get(name)
        if error is None and node is not None and node.kind == "agent":
            assert traced == usage, (name, result.trace, usage)


def check_chain(outcomes: list[Outcome]) -> None:
    """A resumed run goes on from where it paused: nothing it had is lost."""
    for (before, _), (after, _) in itertools.pairwise(outcomes):
        assert before.status == "waiting"
        assert after.run_id == before.run_id
        assert after.path[: len(before.path)] == before.path
        assert after.messages[: len(before.messages)] == before.messages
        assert after.steps >= before.steps


def check_transfers_offered(flow: fg.Flow, requests: list[dict[str, Any]]) -> None:
    """An agent is offered exactly one transfer tool per LLM edge out of it."""
    for request in requests:
        system = request["messages"][0]
        if request["format"] is not None or system.get("role") != "system":
            continue
        agent = system["content"].removeprefix("You are ").rstrip(".")
        offered = {
            tool["function"]["name"]
            for tool in request["tools"] or ()
            if tool["function"]["name"].startswith("transfer_to_")
        }
        wanted = {
            f"transfer_to_{edge.target}"
            for edge in flow.edges
            if edge.source == agent and edge.kind == "llm"
        }
        assert offered == wanted, (agent, offered, wanted)


def validated(spec: GraphSpec, model: fg.Model | None) -> fg.Flow | None:
    """The flow, or None when ``validate`` refuses it (allowed: nothing else is)."""
    try:
        flow = build(spec, model)
        flow.validate()
    except fg.FlowValidationError:
        event("refused by validate")
        return None
    return flow


PROPERTIES = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@settings(PROPERTIES, max_examples=1200)
@given(spec=graph_specs(), replies=reply_lists, max_steps=st.integers(1, 8))
def test_any_run_keeps_its_invariants(
    spec: GraphSpec, replies: list[tuple[Any, ...]], max_steps: int
) -> None:
    model = ReplayModel(replies)
    flow = validated(spec, model)
    if flow is None:
        return
    outcomes = asyncio.run(drive(flow, max_steps, None))
    for result, error in outcomes:
        check_outcome(flow, max_steps, result, error)
    check_chain(outcomes)
    final = outcomes[-1][0]
    assert final.usage == model.usage, "the run's usage is not what the model reported"
    assert final.usage_by_node == model.by_node, "usage is counted for the wrong node"
    assert final.usage.requests == model.replayer.handed
    check_transfers_offered(flow, model.replayer.requests)


@settings(PROPERTIES, max_examples=250)
@given(spec=graph_specs(), replies=reply_lists, max_steps=st.integers(1, 8))
def test_a_stored_run_folds_back_to_its_result(
    spec: GraphSpec, replies: list[tuple[Any, ...]], max_steps: int
) -> None:
    flow = validated(spec, ReplayModel(replies))
    if flow is None:
        return
    store = fg.MemoryCheckpointer()
    outcomes = asyncio.run(drive(flow, max_steps, store))
    check_chain(outcomes)
    result, error = outcomes[-1]
    for earlier, failure in outcomes:
        check_outcome(flow, max_steps, earlier, failure)
    snapshot = asyncio.run(store.load(result.run_id))
    assert snapshot is not None
    assert snapshot.status == result.status
    if error is None:
        assert snapshot.messages == result.messages
        assert snapshot.path == result.path
        assert usage_of(snapshot.usage) == result.usage
        assert {n: usage_of(u) for n, u in snapshot.usage_by_node.items()} == result.usage_by_node
        assert snapshot.step == result.steps
        assert json.loads(snapshot.context or "{}") == result.context
        stored = [StepRecord.model_validate(record) for record in snapshot.trace]
        assert [record.node for record in stored] == [r.node for r in result.trace]
    else:  # a failure is marked on the last commit: what followed it is left out
        assert snapshot.messages == result.messages[: len(snapshot.messages)]
        assert snapshot.path == result.path[: len(snapshot.path)]
    # A run committed just before its tool calls ran ends with those calls unanswered:
    # resuming answers them first.
    pending = bool(snapshot.positions) and snapshot.positions[-1].pending
    check_history(snapshot.messages[:-1] if pending else snapshot.messages)


class Both:
    """A store that keeps each commit in memory and in a SQLite file."""

    def __init__(self, path: str, quiet: float) -> None:
        self.memory = fg.MemoryCheckpointer()
        self.sqlite = fg.SQLiteCheckpointer(path, quiet=quiet, max_wait=quiet * 20)

    def commit(self, commit: Commit) -> None:
        self.memory.commit(commit)
        self.sqlite.commit(commit)

    def commit_steps(
        self, run_id: str, flow: str, parent: str | None, started: float, steps: list[Any]
    ) -> None:
        """Plain steps, as the journal hands them to a SQLite store: the memory store
        keeps the Commits they stand for."""
        self.sqlite.commit_steps(run_id, flow, parent, started, steps)
        for seq, step, positions, start, messages, usage, by_node, *rest in steps:
            path, context, trace, output, *_ = rest
            self.memory.commit(
                Commit(
                    run_id,
                    flow,
                    seq,
                    "running",
                    "",
                    step,
                    positions,
                    start,
                    messages,
                    usage,
                    by_node,
                    context,
                    path=path,
                    trace=trace,
                    output=output,
                    parent=parent,
                    started=started,
                )
            )

    def announce(self, journal: Any) -> None:
        self.sqlite.announce(journal)

    async def flush(self) -> None:
        await self.sqlite.flush()

    async def load(self, run_id: str, *, step: int | None = None) -> Commit | None:
        return await self.memory.load(run_id, step=step)

    async def list_runs(self, flow: str | None = None, limit: int = 100) -> list[fg.RunInfo]:
        return await self.memory.list_runs(flow, limit)


def as_data(items: list[Any]) -> list[Any]:
    return [item if isinstance(item, dict) else item.model_dump() for item in items]


def same_commit(stored: Commit | None, kept: Commit | None) -> None:
    assert (stored is None) == (kept is None)
    if stored is None or kept is None:
        return
    for name in ("seq", "status", "reason", "step", "positions", "messages", "usage"):
        assert getattr(stored, name) == getattr(kept, name), name
    for name in ("usage_by_node", "context", "context_type", "path", "notes", "output"):
        assert getattr(stored, name) == getattr(kept, name), name
    assert (stored.replies, stored.waiting, stored.parent) == (kept.replies, kept.waiting, None)
    assert as_data(stored.trace) == as_data(kept.trace)
    assert as_data(stored.chats) == as_data(kept.chats)
    inner = {where: {n: as_data(v) for n, v in logs.items()} for where, logs in kept.inner.items()}
    assert stored.inner == inner


def reads_back_the_same(store: Both, run_id: str, steps: int) -> None:
    """The run as SQLite and memory give it back: at the end, and at each step."""

    async def both(step: int | None) -> tuple[Commit | None, Commit | None]:
        return (
            await store.sqlite.load(run_id, step=step),
            await store.memory.load(run_id, step=step),
        )

    for step in [None, *range(steps + 1)]:
        same_commit(*asyncio.run(both(step)))


@settings(PROPERTIES, max_examples=60)
@given(
    spec=graph_specs(),
    replies=reply_lists,
    max_steps=st.integers(1, 8),
    quiet=st.sampled_from([0.0, 0.005]),
)
def test_a_sqlite_store_reads_back_what_a_memory_store_keeps(
    tmp_path_factory: pytest.TempPathFactory,
    spec: GraphSpec,
    replies: list[tuple[Any, ...]],
    max_steps: int,
    quiet: float,
) -> None:
    """At every step, and however its commits were batched into rows (quiet=0 writes
    nearly each on its own)."""
    flow = validated(spec, ReplayModel(replies))
    if flow is None:
        return
    store = Both(str(tmp_path_factory.mktemp("both") / "runs.db"), quiet)
    result, _ = asyncio.run(drive(flow, max_steps, store))[-1]
    reads_back_the_same(store, result.run_id, result.steps)


class NoteTaker:
    """A model that calls ``note`` when the agent's turn starts, then answers."""

    name = "note-taker"

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> fg.Completion:
        usage = fg.Usage(requests=1, prompt_tokens=len(messages), completion_tokens=2)
        if messages[-1]["role"] == "tool":
            return fg.Completion({"role": "assistant", "content": "Noted."}, usage)
        call = {"id": f"call_{len(messages)}", "type": "function"}
        call["function"] = {"name": "note", "arguments": '{"text": "seen"}'}
        return fg.Completion({"role": "assistant", "content": None, "tool_calls": [call]}, usage)


@pytest.mark.parametrize("fails", [False, True])
def test_a_sqlite_store_reads_back_a_run_whose_output_stays(tmp_path: Path, fails: bool) -> None:
    """The output is written only when it changes: a failure is marked over the last
    commit, keeping its output, and the commits are written in many rows (quiet=0)."""

    def tick(ctx: fg.RunContext) -> None:
        ctx.context["ticks"] += 1
        if fails and ctx.context["ticks"] == 3:
            raise ValueError("the third tick fails")

    agent = fg.Agent("worker", "Work.", tools=[fg.Tool(lambda text: "noted", name="note")])
    flow = fg.Flow("notes", model=NoteTaker())
    flow.edge(fg.START, agent)
    flow.edge(agent, fg.ToolStep("tick", tick))
    flow.edge("tick", fg.END, when=lambda ctx: ctx.context["ticks"] >= 4)
    flow.edge("tick", agent)
    store = Both(str(tmp_path / "runs.db"), quiet=0.0)
    if fails:
        with pytest.raises(fg.RunError, match="the third tick fails") as caught:
            flow.run("go", context={"ticks": 0}, store=store)
        assert caught.value.result is not None
        result = caught.value.result
    else:
        result = flow.run("go", context={"ticks": 0}, store=store)
    assert result.steps == (6 if fails else 8)
    reads_back_the_same(store, result.run_id, result.steps)


@pytest.fixture(scope="module")
def http() -> Iterator[tuple[ScriptedServer, list[Replayer]]]:
    """One scripted server for every example; each example sets its own replayer."""
    current: list[Replayer] = [Replayer([])]
    lock = threading.Lock()

    def answer(request: ChatRequest) -> Reply:
        with lock:
            reply = current[0].next(request.messages, request.tools, request.response_format)
        return http_answer(reply, request)

    with ScriptedServer(answer) as server:
        yield server, current


@settings(PROPERTIES, max_examples=100)
@given(spec=graph_specs(), replies=reply_lists, max_steps=st.integers(1, 6))
def test_runs_through_the_http_server_keep_their_invariants(
    http: tuple[ScriptedServer, list[Replayer]],
    spec: GraphSpec,
    replies: list[tuple[Any, ...]],
    max_steps: int,
) -> None:
    server, current = http
    current[0] = replayer = Replayer(replies)
    seen = len(server.requests)
    flow = validated(spec, server.model(max_retries=0))
    if flow is None:
        return
    outcomes = asyncio.run(drive(flow, max_steps, None))
    for result, error in outcomes:
        check_outcome(flow, max_steps, result, error)
    rejected = [r.rejection for r in server.requests[seen:] if r.rejection is not None]
    assert not rejected, f"the strict server refused requests: {rejected}"
    assert not server.errors
    assert outcomes[-1][0].usage.requests == replayer.handed


@settings(PROPERTIES, max_examples=150)
@given(spec=graph_specs())
def test_validate_raises_only_flow_validation_errors(spec: GraphSpec) -> None:
    for model in (ReplayModel([]), None):
        problems: list[str] = []
        try:
            build(spec, model).validate()
        except fg.FlowValidationError as error:
            problems = error.problems or [""]
        assert all(isinstance(p, str) and p for p in problems), problems


# -- bugs the properties found, kept as minimal examples ------------------------------------


class ChooseDone:
    """A model whose every answer routes to the node ``done``."""

    name = "choose-done"

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> fg.Completion:
        content = json.dumps({"choice": "done"})
        usage = fg.Usage(requests=1, prompt_tokens=5, completion_tokens=3)
        return fg.Completion({"role": "assistant", "content": content}, usage)


def test_router_usage_is_in_the_step_record_of_its_node() -> None:
    flow = fg.Flow("routed", model=ChooseDone())
    flow.edge(fg.START, fg.ToolStep("check", constant))
    flow.edge("check", fg.ToolStep("done", constant), when="It checked out.")
    flow.edge("done", fg.END)

    result = flow.run("go")

    assert result.path == ["check", "done"]
    assert result.usage_by_node["check"].requests == 1
    assert result.trace[0].usage == result.usage_by_node["check"]


def test_max_steps_exceeded_counts_only_the_visits_made() -> None:
    flow = fg.Flow("loop")
    loop = fg.ToolStep("loop", constant)
    flow.edge(fg.START, loop)
    flow.edge(loop, loop)

    with pytest.raises(fg.MaxStepsExceeded) as caught:
        flow.run("go", max_steps=3)

    result = caught.value.result
    assert result is not None
    assert len(result.path) == len(result.trace) == 3
    assert result.steps <= 3
