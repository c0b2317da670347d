"""One run in flight: its conversation, context, counters, and the services nodes use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from flowgraph._callables import call_user
from flowgraph._context import RunContext, Usage
from flowgraph._edges import Edge
from flowgraph._errors import ModelError, RunError, UsageError
from flowgraph._hooks import HookContext, HookSet
from flowgraph._messages import HistoryError, Message, check_history
from flowgraph._models import Completion, Model
from flowgraph._result import RunResult, Status, StepRecord

if TYPE_CHECKING:
    from flowgraph._nested import ChatResult
    from flowgraph._nodes import Node
    from flowgraph._plan import Plan


@dataclass
class Visit:
    """How a node's visit ended: its output, and the hand-off an agent chose."""

    output: Any = None
    handoff: Edge | None = None
    inner: RunResult | None = None  # a sub-flow's run


class Run:
    """The mutable state of one run, and the calls every node makes through it."""

    def __init__(
        self,
        plan: Plan,
        messages: list[Message],
        context: Any,
        run_id: str,
        max_steps: int,
        hooks: HookSet | None = None,
        inherited_model: Model | None = None,
    ) -> None:
        self.plan = plan
        self.inherited_model = inherited_model  # a sub-flow's: its parent flow's model
        self.hooks = hooks or plan.hooks
        self.run_id = run_id
        self.max_steps = max_steps
        self.messages = messages
        self.usage = Usage()
        self.usage_by_node: dict[str, Usage] = {}
        self.path: list[str] = []
        self.trace: list[StepRecord] = []
        self.notes: list[str] = []
        self.chats: list[ChatResult] = []
        self.step = 0
        self.output: Any = None
        self.ctx: RunContext[Any] = RunContext(
            context, messages, run_id, usage=self.usage, path=self.path
        )

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
    ) -> Completion:
        """Send one request for ``node`` (with ``model``, by default the node's) after
        checking the history; count its usage for the node and the run."""
        try:
            check_history(messages)
        except HistoryError as exc:
            raise RunError(
                f"node {node!r} would send a broken conversation: {exc}", node=node
            ) from exc
        model = model or self.model_of(self.plan.nodes.get(node))
        try:
            completion = await model.complete(
                messages, tools=tools or None, response_format=response_format
            )
        except RunError:
            raise
        except Exception as exc:
            raise ModelError(
                f"the model request of node {node!r} failed "
                f"({model.name}): {type(exc).__name__}: {exc}",
                node=node,
            ) from exc
        self.usage.add(completion.usage)
        node_usage = self.usage_by_node.get(node)
        if node_usage is None:
            node_usage = self.usage_by_node[node] = Usage()
        node_usage.add(completion.usage)
        return completion

    async def after_completion(self, node: Node, completion: Message | None) -> None:
        """Run the flow's and the node's after_completion hooks at this safe point."""
        hooks = self.hooks.after_completion + node.hooks
        point: Literal["completion", "node_exit"] = (
            "completion" if completion is not None else "node_exit"
        )
        for hook in hooks:
            try:
                await call_user(hook, HookContext(self, node.name, point, completion))
            except UsageError:
                raise
            except Exception as exc:
                name = getattr(hook, "__name__", repr(hook))
                raise RunError(
                    f"the after_completion hook {name!r} raised at node "
                    f"{node.name!r}: {type(exc).__name__}: {exc}",
                    node=node.name,
                ) from exc

    def result(self, status: Status, reason: str) -> RunResult:
        result = RunResult(
            flow=self.plan.flow.name,
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
