"""``Human``: a node that pauses the run until a person replies."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from flowgraph._base.callables import MaybeAwaitable
from flowgraph._base.context import AnyContext
from flowgraph._graph.nodes import Node, check_text
from flowgraph._llm.models import Model

Prompt = str | Callable[[AnyContext], MaybeAwaitable[str]]


class Human(Node):
    """Ask a person, and wait for the answer: hours later, in another process.

    A visit adds ``prompt`` to the conversation (as an assistant message named after
    the node) and pauses the run: ``run()`` returns a result with status
    ``"waiting"``, committed to the run's store. ``flow.resume(run_id, reply=...,
    store=...)`` goes on: the reply joins the conversation as a user message and is
    the node's output; the node's edges then decide as for any node.

    Args:
        name: unique in the flow.
        prompt: the question: text, or a function of the run context.
        model: the model for this node's LLM-evaluated edges (one router request).

    Example:
        >>> approve = Human("approve", prompt="Approve the refund?")
        >>> # flow.edge(refund, approve); flow.edge(approve, pay, when=said_yes)
    """

    kind: ClassVar[str] = "human"

    def __init__(self, name: str, prompt: Prompt = "Your reply?", *, model: Model | None = None):
        super().__init__(name, model=model)
        self.prompt = check_text(prompt, f"the prompt of human node {name!r}")
