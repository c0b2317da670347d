"""One run in flight: its conversation, context, counters, and the services nodes use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from flowgraph._base.callables import call_user, implements
from flowgraph._base.context import CURRENT_CALL, HOOK_FLOWS
from flowgraph._base.errors import UsageError
from flowgraph._base.failures import DeadlineExceeded, ModelError, RunError
from flowgraph._base.messages import (
    CallIds,
    HistoryCheck,
    HistoryError,
    Message,
    check_history,
)
from flowgraph._base.result import HookRecord, RunResult, Status, Waiting, WaitKind
from flowgraph._base.retry import DEFAULT_REQUEST_RETRY, DeadlinePassed, Retry, retrying, transient
from flowgraph._engine.journal import Journal
from flowgraph._engine.state import RunState
from flowgraph._graph.edges import Edge
from flowgraph._graph.hooks import HookContext, HookSet
from flowgraph._graph.nodes import Node
from flowgraph._graph.plan import Plan
from flowgraph._llm.models import (
    Completion,
    Delta,
    Model,
    OpenAIModel,
    StreamingModel,
    deltas_of,
)
from flowgraph._store.open import DEFAULT_STORE
from flowgraph._store.records import Position

WORTH_SAVING = 0.001  # seconds of work inside a visit worth a commit of their own


class Pause(BaseException):
    """Unwinds a run to a pause: it waits for a reply (a Human node, an interrupt, an
    approval). A BaseException, so a tool's ``except Exception`` cannot swallow it."""

    def __init__(self, waiting: Waiting) -> None:
        super().__init__(waiting.prompt)
        self.waiting = waiting


@dataclass
class Visit:
    """How a node's visit ended: its output, and the hand-off an agent chose."""

    output: Any = None
    handoff: Edge | None = None
    inner: RunResult | None = None  # a sub-flow's run
    decided: bool = False  # chosen before any rule: a tool's fg.Handoff, a before= condition


class Tap(Protocol):
    """What listens to a streamed run (``flow.astream``); a run with no tap is not
    streamed, and says nothing."""

    async def tell(self, type: str, run: Run, fields: dict[str, Any], /) -> None: ...


class Run(RunState):
    """A run in flight: its state (``RunState``), and the services its nodes' visits
    use: model requests with retry (``complete``), hooks (``after_completion``),
    checkpoints (``checkpoint``, through the root run's journal), pauses
    (``interrupt``) and the end (``settle``). Visits touch the run through these
    methods and the state's conversation, context and logs; the resume machinery
    (``resume``, ``inner_logs``, ``replies``) is the scheduler's and the journal's.
    """

    parent: Run | None
    child: Run | None

    def __init__(
        self,
        plan: Plan,
        messages: list[Message],
        context: Any,
        run_id: str,
        max_steps: int,
        hooks: HookSet | None = None,
        inherited_model: Model | None = None,
        parent: Run | None = None,
    ) -> None:
        super().__init__(run_id, plan.flow.name, messages, context, parent)
        self.ctx._run = self
        self.plan = plan
        self.journal: Journal | None = None  # the root run's, when it has a store
        self.deadline: float | None = parent.deadline if parent is not None else None
        self.inherited_model = inherited_model  # a sub-flow's: its parent flow's model
        self.hooks = hooks or plan.hooks
        self.max_steps = max_steps
        self.history = HistoryCheck()  # of ``messages``, checked before each request
        self.call_ids = CallIds()  # of ``messages``: a reply's calls get ids of their own
        self.tap: Tap | None = parent.tap if parent is not None else None
        # Tools that take the run context run one at a time (see agent.py, _answer).
        self.context_lock = asyncio.Lock()
        # What the visit in progress did, for its StepRecord: the model its requests
        # went to, and the hooks that injected messages or ran flows.
        self.asked: str | None = None
        self.hooked: list[HookRecord] = []
        self.out_of_turns = False  # the agent reached max_turns without a final answer
        # The edge the run took into the node it visits, and where the conversation stood
        # then (what the node's agent sees of it: the edge's history policy).
        self.entry: tuple[Edge, int] | None = None
        # The root's: visits that ended without an answer, said in the run's reason.
        self.soft_ends: list[str] = []

    async def tell(self, type: str, /, **fields: Any) -> None:
        """Say what happened to whoever streams the run (see ``_engine/stream.py``);
        callers check ``self.tap`` first, sparing the arguments when no one listens."""
        if self.tap is not None:
            await self.tap.tell(type, self, fields)

    def nodes(self) -> list[str]:
        """The nodes the run is in now, outermost first: a sub-flow's run is in its
        parent's sub-flow node, then in its own."""
        outer = self.parent.nodes() if self.parent is not None else []
        return [*outer, self.ctx.node] if self.ctx.node else outer

    def deadline_passed(self, node: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"the run passed its deadline at node {node!r}; what it committed is kept: "
            "resume it (with a new deadline) to go on",
            node=node,
        )

    def check_deadline(self, node: str) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise self.deadline_passed(node)

    # -- checkpoints and pauses -------------------------------------------------------

    @property
    def root(self) -> Run:
        """The run around every sub-flow: the one with the journal."""
        return self if self.parent is None else self.parent.root

    async def checkpoint(
        self, position: Position, *, durable: bool = False, inside: bool = False
    ) -> None:
        """Note ``position`` and commit the run there; ``durable`` waits for the store.

        A point ``inside`` a visit (an agent between its requests and tool calls) is
        committed only if it is ``durable`` or the work since the last commit took
        ``WORTH_SAVING`` seconds or more: redoing less after a crash costs less than
        committing it every time.
        """
        self.position = position
        root = self.root
        journal = root.journal
        if journal is None:
            return
        if inside and not durable and time.monotonic() - journal.committed < WORTH_SAVING:
            return
        if self.parent is None and position.phase == "next":
            root.replies.clear()  # a step boundary: the replies were used
        journal.commit(root, root.positions(), "running")
        if durable:
            await journal.flush()

    def call_key(self, call: str) -> str:
        """A key naming one call at this point of the run, stable when it is resumed:
        the run id, the step of the run and of each sub-flow, and ``call``."""
        return f"{self.run_id}:{self.where() or self.step}:{call}"

    def replied(self, key: str) -> bool:
        """The run was resumed with a reply for ``key`` (an ask or an interrupt)."""
        return key in self.root.replies

    def interrupt(self, prompt: str, kind: WaitKind = "interrupt", key: str | None = None) -> Any:
        """The reply to ``prompt`` if the run was resumed with one, else pause the run."""
        if key is None:
            call = CURRENT_CALL.get()
            if call is None:
                raise UsageError(
                    "ctx.interrupt() pauses a tool call or a tool step: call it from one"
                )
            if not call.can_pause:
                raise UsageError(
                    f"a tool in the nested chats of {self.ctx.node!r} asked a human "
                    f"({prompt!r}); only the flow's own agents, tool steps and Human nodes "
                    "can pause a run"
                )
            call.interrupts += 1
            key = f"{call.key}:{call.interrupts}"
        replies = self.root.replies
        if key in replies:
            return replies[key]
        node = self.position.node if self.position is not None else self.ctx.node
        raise Pause(Waiting(key=key, node=node, prompt=prompt, kind=kind))

    async def settle(
        self, status: Status, reason: str, waiting: Waiting | None = None
    ) -> RunResult:
        """End the run here (or pause it): commit the end and wait for the store."""
        result = self.result(status, reason)
        result.waiting = waiting
        journal = self.journal
        if journal is None and status == "waiting":
            # No store: keep the paused run in this process, so resume() finds it.
            journal = self.journal = Journal(DEFAULT_STORE, self.run_id, self.plan.flow.name)
        if journal is not None:
            if status == "failed":
                journal.mark(self, status, reason)
            else:
                journal.commit(self, self.positions(), status, reason, waiting)
            await journal.flush()
        return result

    def model_of(self, node: Node | None) -> Model:
        """The node's own model, else its flow's, else the parent flow's (in a sub-flow),
        else the default model."""
        return self.plan.model_of(node, self.inherited_model)

    def append(self, message: Message) -> None:
        self.messages.append(message)

    def note(self, text: str) -> None:
        self.notes.append(text)

    async def complete(
        self,
        node: str,
        messages: list[Message],
        *,
        model: Model | None = None,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        checked: bool = False,
        inner: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Completion:
        """Send one request for ``node`` (with ``model``, by default the node's) after
        checking the history (unless the caller ``checked`` it), retrying as ``retry``
        (else the flow's, else the model's policy) allows; count its usage for the
        node and the run. ``inner``: the agent inside the node that asks (a nested
        chat's), for the stream's event path. ``settings``: sent besides the model's own
        (an ``OpenAIModel``'s; other models get none)."""
        if not checked:
            self.check_history(node, messages)
        model = model or self.model_of(self.plan.nodes.get(node))
        flow = self.plan.flow
        policy = retry or flow.retry or getattr(model, "retry", None) or DEFAULT_REQUEST_RETRY
        options: dict[str, Any] = {"tools": tools or None, "response_format": response_format}
        if settings and isinstance(model, OpenAIModel):
            options["settings"] = settings
        ask = (
            self._streamed(model, messages, options, inner)
            if self.tap is not None
            else lambda: model.complete(messages, **options)
        )
        try:
            completion = await retrying(
                ask,
                policy,
                transient,
                timeout=timeout or flow.request_timeout,
                deadline=self.deadline,
            )
        except RunError:
            raise
        except DeadlinePassed as exc:
            raise self.deadline_passed(node) from exc.__cause__
        except Exception as exc:
            raise ModelError(
                f"the model request of node {node!r} failed "
                f"({model.name}): {type(exc).__name__}: {exc}",
                node=node,
            ) from exc
        _check_completion(completion, node, model)
        self.spend(node, completion.usage)
        self.asked = model.name
        return completion

    def _streamed(
        self,
        model: Model,
        messages: list[Message],
        options: dict[str, Any],
        inner: str | None,
    ) -> Callable[[], Awaitable[Completion]]:
        """One try of a request whose reply the stream is told piece by piece: as the
        model sends them if it streams (``StreamingModel``), else the whole reply at
        once. A try after a failed one says so first: its pieces were void."""
        tries: list[BaseException | None] = []

        async def tell(delta: Delta) -> None:
            if delta.index is None:
                await self.tell("text_delta", delta=delta.text, inner=inner)
            else:
                await self.tell(
                    "tool_call_delta",
                    index=delta.index,
                    call_id=delta.call_id,
                    name=delta.name,
                    delta=delta.arguments,
                    inner=inner,
                )

        async def attempt() -> Completion:
            if tries:
                error = f"{type(tries[-1]).__name__}: {tries[-1]}"
                await self.tell("request_retried", attempt=len(tries) + 1, error=error, inner=inner)
            tries.append(None)
            try:
                if implements(model, StreamingModel):
                    return await cast(StreamingModel, model).stream(
                        messages, on_delta=tell, **options
                    )
                completion = await model.complete(messages, **options)
                for delta in deltas_of(completion.message):
                    await tell(delta)
                return completion
            except Exception as exc:
                tries[-1] = exc
                raise

        return attempt

    def check_history(
        self, node: str, messages: list[Message], history: HistoryCheck | None = None
    ) -> None:
        """Refuse to send a conversation whose tool calls are not answered in place;
        ``history`` checks only what was added since its last check."""
        try:
            if history is None:
                check_history(messages)
            else:
                history.check(messages)
        except HistoryError as exc:
            raise RunError(
                f"node {node!r} would send a broken conversation: {exc}", node=node
            ) from exc

    async def after_completion(self, node: Node, completion: Message | None) -> None:
        """Run the flow's and the node's after_completion hooks at this safe point."""
        hooks = self.hooks.after_completion + node.hooks
        point: Literal["completion", "node_exit"] = (
            "completion" if completion is not None else "node_exit"
        )
        for hook in hooks:
            name = getattr(hook, "__name__", repr(hook))
            before, flows = len(self.messages), list[str]()
            token = HOOK_FLOWS.set(flows)
            try:
                await call_user(
                    hook, HookContext(self.ctx, self.step, node.name, point, completion)
                )
            except UsageError:
                raise
            except Exception as exc:
                raise RunError(
                    f"the after_completion hook {name!r} raised at node "
                    f"{node.name!r}: {type(exc).__name__}: {exc}",
                    node=node.name,
                ) from exc
            finally:
                HOOK_FLOWS.reset(token)
            if flows or len(self.messages) > before:
                added = self.messages[before:]
                roles = [str(message.get("role")) for message in added]
                self.hooked.append(HookRecord(hook=name, point=point, injected=roles, flows=flows))
                if self.tap is not None and added:
                    await self.tell("injected", hook=name, messages=added)

    def result(self, status: Status, reason: str) -> RunResult:
        result = RunResult(
            flow=self.flow,
            run_id=self.run_id,
            status=status,
            reason=reason,
            output=self.output,
            messages=self.messages,
            context=self.ctx.context,
            path=self.path,
            usage=self.usage,
            usage_by_node=self.usage_by_node,
            steps=self.step,
            trace=self.trace,
            notes=self.notes,
            chats=self.chats,
        )
        result._flow = self.plan.flow
        return result


def _check_completion(completion: object, node: str, model: Model) -> None:
    """A model of one's own that returns something else gets told what to return."""
    if type(completion) is not Completion and not isinstance(completion, Completion):
        raise ModelError(
            f"the model of node {node!r} ({model.name}) returned a "
            f"{type(completion).__name__}, not an fg.Completion: a Model's complete() "
            "returns fg.Completion(message, fg.Usage(...)), the message an OpenAI-format "
            "assistant message",
            node=node,
        )
