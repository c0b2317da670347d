"""``Flow``: build a graph of nodes and edges, validate it, run it, draw it."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from flowgraph._base.bridge import blocks_a_loop, run_sync
from flowgraph._base.checks import check_count, check_seconds
from flowgraph._base.errors import UsageError
from flowgraph._base.failures import RunError
from flowgraph._base.messages import Input, user_messages
from flowgraph._base.result import RunResult
from flowgraph._engine.encode import dump_context
from flowgraph._engine.journal import Journal, fork_run
from flowgraph._engine.resume import restore
from flowgraph._engine.run import Run
from flowgraph._engine.scheduler import execute
from flowgraph._graph.hooks import Hooks
from flowgraph._graph.nodes import Node
from flowgraph._graph.spec import FlowSpec
from flowgraph._llm.models import Model
from flowgraph._store.lease import leased
from flowgraph._store.open import DEFAULT_STORE, Store, open_store
from flowgraph._store.protocol import as_step_store
from flowgraph._store.records import Commit, RunInfo
from flowgraph._streaming import Streaming

if TYPE_CHECKING:
    import graphviz

    from flowgraph._draw.live import Live, LiveView, TextProgress
    from flowgraph._engine.run import Tap


class Flow(FlowSpec, Streaming):
    """A graph of agents and tool steps, joined by hand-off edges.

    Build it with ``edge()``, check it with ``validate()`` (``run`` does too), then
    ``run()`` it, or ``await arun()`` it from async code.

    Args:
        name: the flow's name, shown in errors and pictures.
        model: the model of every agent and router that names none; by default
            OpenAI when ``OPENAI_API_KEY`` is set, else the bundled local model.
        max_steps: the most node visits one run may make (a guard against loops).
        retry: how model requests are retried (``fg.Retry``; by default the model's
            policy: 3 attempts on 429, 5xx, timeouts and dropped connections).
        request_timeout: seconds one model request may take.
        deadline: seconds one run (or one resume of it) may take in all; past it the
            run fails with ``DeadlineExceeded``, its committed state kept.
        on_max_turns: what an agent that reaches its ``max_turns`` without a final
            answer does: ``"go_on"`` (the run goes on, and says so in its reason, the
            step's record and the picture) or ``"fail"`` (``MaxTurnsExceeded``).

    Example:
        >>> import flowgraph as fg
        >>> triage = fg.Agent("triage", instructions="Route the customer.")
        >>> refund = fg.Agent("refund", instructions="Handle refunds.")
        >>> flow = fg.Flow("support")
        >>> _ = flow.edge(fg.START, triage)
        >>> _ = flow.edge(triage, refund, when="The customer wants money back.")
        >>> _ = flow.edge(triage, fg.END)
        >>> _ = flow.edge(refund, fg.END)
        >>> flow.validate()
    """

    _warned_blocking = False  # run() inside a running loop said so (see _wait)

    def model_of(self, node: Node | str) -> Model:
        """The model ``node``'s requests go to: its own, else the flow's, else the
        default (OpenAI when ``OPENAI_API_KEY`` is set, else the bundled local model).

        Example:
            >>> flow.model_of("triage").name  # doctest: +SKIP
            'gpt-4.1-mini'
        """
        name = node if isinstance(node, str) else node.name
        plan = self._compile()
        if name not in plan.nodes:
            raise UsageError(f"flow {self.name!r} has no node {name!r}: it has {list(plan.nodes)}")
        return plan.model_of(plan.nodes[name])

    # -- running --------------------------------------------------------------------

    async def arun(
        self,
        input: Input,
        *,
        context: Any = None,
        max_steps: int | None = None,
        run_id: str | None = None,
        hooks: Hooks | Sequence[Hooks] = (),
        live: Live = False,
        store: Store | None = None,
        deadline: float | None = None,
    ) -> RunResult:
        """Run the flow on ``input`` (a user message, or a list of messages).

        Args:
            input: the opening user message, or messages in OpenAI chat format.
            context: the context variables (a dict or a pydantic model); tools,
                predicates, instructions and hooks read and write it.
            max_steps: the most node visits this run may make.
            run_id: an id for the run; by default a new random one.
            hooks: observers for this run only, besides the flow's own.
            live: draw the run as it goes: in Jupyter one picture updated in place,
                elsewhere a line per step on stderr; or a function given each SVG.
            store: commit the run after every step, to resume it after a crash or a
                pause: a SQLite file path (``"runs.db"``) or a ``Checkpointer``.
            deadline: seconds the run may take (by default the flow's ``deadline``).

        Returns:
            The result; its ``status`` is ``"completed"``, or ``"waiting"`` when the
            run paused for a human (``resume`` it with the reply).

        Raises:
            FlowValidationError: the flow is broken (nothing was sent).
            RunError: the run failed; ``error.result`` holds the run so far.
        """
        return await self._start(
            input,
            context=context,
            max_steps=max_steps,
            run_id=run_id,
            hooks=hooks,
            live=live,
            store=store,
            deadline=deadline,
        )

    async def _start(
        self,
        input: Input,
        *,
        context: Any,
        max_steps: int | None,
        run_id: str | None,
        hooks: Hooks | Sequence[Hooks],
        live: Live,
        store: Store | None,
        deadline: float | None,
        tap: Tap | None = None,
    ) -> RunResult:
        _check_call(max_steps, hooks, live, deadline)
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise UsageError(f"run_id must be non-empty text, got {run_id!r}")
        plan = self._compile()
        run = Run(
            plan,
            user_messages(input),
            {} if context is None else context,
            run_id or uuid.uuid4().hex,
            max_steps or self.max_steps,
        )
        run.tap = tap
        checkpointer = open_store(store)
        async with leased(checkpointer, run.run_id, fresh=run_id is None):  # one driver
            if checkpointer is not None:
                if run_id is not None and await checkpointer.load(run_id) is not None:
                    raise UsageError(
                        f"run {run_id!r} is already in {_where(store)}: resume it with "
                        "flow.resume(run_id, ...), or start a new run with another run_id"
                    )
                store_of_run = as_step_store(checkpointer)
                run.journal = Journal(store_of_run, run.run_id, run.plan.flow.name)
            else:  # a store checks it at the first commit: without one, check it here
                dump_context(run.ctx.context, run.run_id)
            return await self._drive(run, hooks, live, deadline)

    async def aresume(
        self,
        run_id: str,
        *,
        store: Store | None = None,
        reply: Any = None,
        max_steps: int | None = None,
        hooks: Hooks | Sequence[Hooks] = (),
        live: Live = False,
        deadline: float | None = None,
    ) -> RunResult:
        """Go on with a stored run from its last commit: after a crash, a failure,
        or a pause (then with the human's ``reply``). Arguments as for ``resume``."""
        return await self._resume(run_id, store, reply, max_steps, hooks, live, deadline)

    async def _resume(
        self,
        run_id: str,
        store: Store | None,
        reply: Any,
        max_steps: int | None,
        hooks: Hooks | Sequence[Hooks],
        live: Live,
        deadline: float | None,
        tap: Tap | None = None,
    ) -> RunResult:
        _check_call(max_steps, hooks, live, deadline)
        checkpointer = open_store(store) or DEFAULT_STORE
        async with leased(checkpointer, run_id):  # before loading: no one moves it on
            snapshot = await checkpointer.load(run_id)
            if snapshot is None:
                raise UsageError(f"there is no run {run_id!r} in {_where(store)}")
            _check_resumable(self, snapshot, reply)
            if snapshot.waiting is not None:
                snapshot.replies[snapshot.waiting.key] = reply
            run = restore(self._compile(), snapshot, max_steps or self.max_steps)
            run.tap = tap
            if checkpointer is DEFAULT_STORE:
                DEFAULT_STORE.forget(run_id)  # it lives on in this run; a pause keeps it again
            else:
                run.journal = Journal.following(as_step_store(checkpointer), snapshot)
            return await self._drive(run, hooks, live, deadline)

    async def _drive(
        self, run: Run, hooks: Hooks | Sequence[Hooks], live: Live, deadline: float | None
    ) -> RunResult:
        seconds = deadline if deadline is not None else self.deadline
        if seconds is not None:
            run.deadline = time.monotonic() + seconds
        if run.tap is not None:
            await run.tell("run_started", flow=self.name, resumed=bool(run.resume))
        extra = [hooks] if isinstance(hooks, Hooks) else list(hooks)
        view = None
        if live:
            # Deferred, as all drawing here: most programs never draw, and the drawing's
            # modules would add a twentieth to flowgraph's import.
            from flowgraph._draw.live import LiveView, live_view

            view = live_view(self, live)
            if isinstance(view, LiveView) and run.tap is None:
                run.tap = view  # the picture shows the answers as they are written
        run.hooks = run.plan.hooks.with_hooks([*extra, view] if view else extra)
        if view is None:
            return await execute(run)
        async with view.drawing():
            try:
                result = await execute(run)
            except RunError as error:
                if error.result is not None:
                    await _draw_last(view, error.result)
                raise
            await _draw_last(view, result)
            return result

    def run(
        self,
        input: Input,
        *,
        context: Any = None,
        max_steps: int | None = None,
        run_id: str | None = None,
        hooks: Hooks | Sequence[Hooks] = (),
        live: Live = False,
        store: Store | None = None,
        deadline: float | None = None,
    ) -> RunResult:
        """Run the flow and wait for it: from a script, or inside Jupyter's running
        loop. Ctrl-C cancels the run cleanly. Arguments as for ``arun``.

        Called inside a running event loop elsewhere (``asyncio.run(main())``, a web
        handler) it works, but blocks that loop until the run ends: a
        ``RuntimeWarning`` says so, once per flow; ``await flow.arun()`` there."""
        return self._wait(
            self.arun(
                input,
                context=context,
                max_steps=max_steps,
                run_id=run_id,
                hooks=hooks,
                live=live,
                store=store,
                deadline=deadline,
            )
        )

    def resume(
        self,
        run_id: str,
        *,
        store: Store | None = None,
        reply: Any = None,
        max_steps: int | None = None,
        hooks: Hooks | Sequence[Hooks] = (),
        live: Live = False,
        deadline: float | None = None,
    ) -> RunResult:
        """Go on with a stored run from its last committed step, in this process or
        another: after a crash, after a failure, or after a pause for a human.

        Args:
            run_id: the run's id (``result.run_id``).
            store: where it was committed (the path or ``Checkpointer`` given to
                ``run``); a run given no store can be resumed in the same process
                while it waits.
            reply: the human's answer, for a run with status ``"waiting"``.
            max_steps, hooks, live, deadline: as for ``run``; ``max_steps`` counts
                the steps already made, ``deadline`` only this resume's time.

        A step that had begun but was not committed runs again (at least once).
        An agent's tool calls are committed before they run, so a resumed run
        answers the same calls with the same ``ctx.idempotency_key``.

        Example:
            >>> result = flow.run("Refund A-1", store="runs.db")  # doctest: +SKIP
            >>> result.status, result.waiting.prompt  # doctest: +SKIP
            ('waiting', 'Approve the refund?')
            >>> flow.resume(result.run_id, store="runs.db", reply="yes").status  # doctest: +SKIP
            'completed'
        """
        return self._wait(
            self.aresume(
                run_id,
                store=store,
                reply=reply,
                max_steps=max_steps,
                hooks=hooks,
                live=live,
                deadline=deadline,
            )
        )

    def _wait(self, coro: Coroutine[Any, Any, RunResult]) -> RunResult:
        """``run_sync(coro)``, saying once per flow when that blocks a running loop."""
        self._say_it_blocks(
            "flow.run() or flow.resume()",
            "`await flow.arun(...)` or `await flow.aresume(...)`",
            frames=2,
        )
        return run_sync(coro)

    def _say_it_blocks(self, called: str, instead: str, frames: int = 1) -> None:
        """Once per flow, a ``RuntimeWarning`` at the user's line (``frames`` of
        flowgraph's above this one) when a sync call blocks an event loop running in its
        thread outside Jupyter."""
        if blocks_a_loop() and not self._warned_blocking:
            self._warned_blocking = True
            warnings.warn(
                f"flow {self.name!r}: {called} was called inside a running event loop, which "
                "it blocks until the run ends (nothing else on that loop runs meanwhile); use "
                f"{instead} there instead",
                RuntimeWarning,
                stacklevel=2 + frames,
            )

    # -- stored runs ----------------------------------------------------------------

    def runs(self, store: Store, *, limit: int = 100) -> list[RunInfo]:
        """This flow's runs in ``store``, newest first: status, path, age, usage."""
        check_count(limit, "flow.runs(limit=...)", error=UsageError)
        checkpointer = open_store(store)
        assert checkpointer is not None
        return run_sync(checkpointer.list_runs(self.name, limit))

    def fork(self, run_id: str, *, step: int, store: Store, context: Any = None) -> str:
        """Copy a stored run as it stood after ``step`` into a new run, and return its id;
        ``resume`` the new run to go on from there (with other ``context``, if given)."""
        checkpointer = open_store(store)
        assert checkpointer is not None
        return run_sync(fork_run(checkpointer, self.name, run_id, step, context))

    # -- drawing --------------------------------------------------------------------

    def to_dot(self, *, direction: str = "TB", detail: str = "full") -> str:
        """The flow in graphviz's DOT language (options as for ``render``)."""
        # Deferred, as all drawing here: most programs never draw (see _drive).
        from flowgraph._draw import picture

        return picture.dot_text(self, direction, detail)

    def to_mermaid(self, *, direction: str = "TB", detail: str = "full") -> str:
        """The flow as a Mermaid flowchart (options as for ``render``)."""
        return self._mermaid_run(None, direction=direction, detail=detail)

    def render(
        self,
        path: str | None = None,
        *,
        format: str | None = None,
        direction: str = "TB",
        detail: str = "full",
    ) -> graphviz.Digraph:
        """Draw the flow with graphviz's ``dot``, offline.

        Args:
            path: the file to write, if any; its suffix names the format.
            format: ``"png"``, ``"svg"``, ``"pdf"`` or ``"dot"`` (overrides the suffix).
            direction: the layout: ``"TB"`` (top to bottom), ``"LR"``, ``"BT"``, ``"RL"``.
            detail: ``"full"`` (models, tools, nested chats and sub-flows drawn inside)
                or ``"compact"`` (names only).

        Returns:
            The ``graphviz.Digraph``; Jupyter shows it inline.

        Example:
            >>> flow.render("flow.svg", direction="LR")  # doctest: +SKIP
        """
        return self._render_run(None, path, format=format, direction=direction, detail=detail)

    def _repr_svg_(self) -> str:
        return self._svg_run(None)

    # -- drawing a run over the flow (RunResult.render and its kin call these) -----

    def _render_run(
        self,
        result: RunResult | None,
        path: str | None,
        *,
        format: str | None,
        direction: str,
        detail: str,
    ) -> graphviz.Digraph:
        # Deferred, as all drawing here: most programs never draw (see _drive).
        from flowgraph._draw import picture

        return picture.render(self, path, format, direction, detail, result)

    def _mermaid_run(self, result: RunResult | None, *, direction: str, detail: str) -> str:
        # Deferred, as all drawing here: most programs never draw (see _drive).
        from flowgraph._draw import picture

        return picture.mermaid(self, direction, detail, result)

    def _svg_run(self, result: RunResult | None) -> str:
        # Deferred, as all drawing here: most programs never draw (see _drive).
        from flowgraph._draw import picture

        return picture.svg_text(self, result)


def _where(store: Store | None) -> str:
    if store is None:
        return "this process (a run given no store is kept here only while it waits)"
    return f"the store {store!r}"


def _check_resumable(flow: Flow, snapshot: Commit, reply: Any) -> None:
    where = f"run {snapshot.run_id!r}"
    if snapshot.flow != flow.name:
        raise UsageError(
            f"{where} belongs to flow {snapshot.flow!r}, not {flow.name!r}: resume it with "
            "the flow it ran on"
        )
    if snapshot.status == "completed":
        raise UsageError(
            f"{where} has completed; nothing is left to resume. To run part of it again, "
            "flow.fork(run_id, step=N, store=...) copies it as it stood after step N"
        )
    if snapshot.waiting is not None and reply is None:
        raise UsageError(
            f"{where} waits at {snapshot.waiting.node!r} for a reply to "
            f"{snapshot.waiting.prompt!r}: pass reply=..."
        )
    if snapshot.waiting is None and reply is not None:
        raise UsageError(f"{where} is not waiting for a reply ({snapshot.status}); drop reply=")


def _check_call(max_steps: object, hooks: object, live: object, deadline: object) -> None:
    """The arguments of a run or a resume, checked before anything is loaded or sent."""
    if max_steps is not None:
        check_count(max_steps, "max_steps", error=UsageError)
    check_seconds(deadline, "deadline", error=UsageError)
    listed = hooks if isinstance(hooks, (list, tuple)) else [hooks]
    if not all(isinstance(each, Hooks) for each in listed):
        raise UsageError(f"hooks= takes an fg.Hooks object or a list of them, got {hooks!r}")
    if not (isinstance(live, bool) or callable(live)):
        raise UsageError(f"live= takes True, False or a function given each SVG, got {live!r}")


async def _draw_last(view: LiveView | TextProgress, result: RunResult) -> None:
    """The live picture's last frame: a picture that cannot be drawn never fails a run
    (the run is done, and stored): it is a note, and a warning."""
    try:
        await view.finish(result)
    except Exception as exc:
        text = f"the live picture could not be drawn: {type(exc).__name__}: {exc}"
        result.notes.append(text)
        warnings.warn(text, RuntimeWarning, stacklevel=3)
