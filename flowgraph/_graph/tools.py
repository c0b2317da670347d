"""Tools: typed Python functions an agent's model may call, with a JSON schema from pydantic."""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict

from flowgraph._base.checks import check_optional, check_seconds
from flowgraph._base.context import AnyContext, RunContext
from flowgraph._base.errors import FlowgraphError, FlowValidationError
from flowgraph._base.messages import as_text
from flowgraph._base.retry import Retry
from flowgraph._base.workers import in_worker
from flowgraph._graph.edges import Handoff

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Returns?|Raises|Yields|Examples?|Notes?|Attributes|"
    r"Warnings?|See Also|Todo):\s*$"
)
_ARGS_SECTIONS = ("Args", "Arguments", "Parameters")
_ARG_LINE = re.compile(r"^\s+(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


class ToolArgumentsError(FlowgraphError, ValueError):
    """The model's arguments for a tool did not validate; the text goes back to it."""


class Tool:
    """A Python function offered to an agent's model as a callable tool.

    Plain functions passed to ``Agent(tools=[...])`` become tools by themselves;
    build a ``Tool`` to override the name or the description, or to have a human
    approve each call before it runs (``requires_approval=True``: the run pauses
    with status ``"waiting"``; ``flow.resume(run_id, reply="yes")`` runs the call,
    any other reply answers the model that it was not approved). ``retry``
    (``fg.Retry(attempts=3, on=(ConnectionError,))``) tries a failing call again
    on the exception types it names; ``timeout`` bounds each try, in seconds. What
    still fails goes back to the model as an error tool message.

    Example:
        >>> def lookup_order(order_id: str) -> dict:
        ...     '''Look up an order by its id.'''
        ...     return {"id": order_id}
        >>> Tool(lookup_order, name="find_order").name
        'find_order'
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
        retry: Retry | None = None,
        timeout: float | None = None,
    ) -> None:
        if not callable(fn):
            raise FlowValidationError(
                f"a tool is a Python function (or fg.Tool(function)), got {fn!r}"
            )
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", ""))
        self.requires_approval = requires_approval
        check_optional(retry, Retry, f"tool {self.name!r}: retry", "pass fg.Retry(on=(...))")
        self.retry = retry
        self.timeout = check_seconds(timeout, f"tool {self.name!r}: timeout")
        self._description = description
        self._spec: _Spec | None = None

    @property
    def description(self) -> str:
        return self._description if self._description is not None else self._built().description

    @property
    def takes_context(self) -> bool:
        """Whether the function asks for the run context (a ``RunContext`` parameter)."""
        return self._built().context_param is not None

    def _built(self) -> _Spec:
        """The schema and calling convention, built on first use (so forward
        references in annotations resolve once the user's module is complete)."""
        if self._spec is None:
            self._spec = _build_spec(self.fn, self.name)
        return self._spec

    def openai_schema(self) -> dict[str, Any]:
        """The tool as an entry of a chat completion's ``tools`` list."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self._built().parameters,
            },
        }

    async def call(self, arguments: str, ctx: AnyContext) -> str | Handoff:
        """Validate the model's JSON ``arguments``, run the function, return its text
        (or the ``Handoff`` it returned).

        Raises:
            ToolArgumentsError: the arguments are not valid JSON or do not fit the
                schema; the message is meant for the model.
        """
        return await self.invoke(self.validate(arguments), ctx)

    def validate(self, arguments: str) -> dict[str, Any]:
        """The model's JSON ``arguments`` checked against the schema, as keyword
        arguments; raises ``ToolArgumentsError`` (meant for the model) if they do not fit."""
        spec = self._built()
        try:
            validated = spec.model.model_validate_json(arguments.strip() or "{}")
        except pydantic.ValidationError as exc:
            raise ToolArgumentsError(_describe(exc, self.name)) from exc
        return {name: getattr(validated, name) for name in spec.model.model_fields}

    async def invoke(self, kwargs: dict[str, Any], ctx: AnyContext) -> str | Handoff:
        """Run the function on validated arguments (and the run context, if it asks):
        its result as text, or the ``Handoff`` it returned."""
        spec = self._built()
        if spec.context_param is not None:
            kwargs = {**kwargs, spec.context_param: ctx}
        if spec.is_async:
            result = await self.fn(**kwargs)
        else:
            # The worker gets the context variables: the call's idempotency key follows.
            result = await in_worker(self.fn, **kwargs)
        return result if isinstance(result, Handoff) else as_text(result)


@dataclass(frozen=True)
class _Spec:
    model: type[BaseModel]
    parameters: dict[str, Any]
    description: str
    context_param: str | None
    is_async: bool


def untyped(tool: Tool) -> list[str]:
    """The parameters of the tool's function that have no annotation (the model is told
    nothing of them: their schema is ``{}``)."""
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    try:
        parameters = inspect.signature(tool.fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return []
    return [p.name for p in parameters if p.annotation is p.empty and p.kind not in kinds]


def as_tools(items: Sequence[Tool | Callable[..., Any]], owner: str) -> list[Tool]:
    """The ``tools=`` of ``owner`` as ``Tool`` objects; each must be a function or a Tool."""
    if isinstance(items, (str, Tool)) or callable(items):
        raise FlowValidationError(f"{owner}: tools= takes a list of functions, got {items!r}")
    return [item if isinstance(item, Tool) else Tool(item) for item in items]


def check_name(name: str) -> None:
    if not TOOL_NAME.match(name):
        raise FlowValidationError(
            f"tool name {name!r} is not allowed: use letters, digits, '_' or '-', at most "
            "64 characters (pass name=... to fg.Tool to rename a lambda or a method)"
        )


def _build_spec(fn: Callable[..., Any], name: str) -> _Spec:
    check_name(name)
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except NameError as exc:
        raise FlowValidationError(f"tool {name!r}: an annotation does not resolve: {exc}") from exc
    summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
    fields: dict[str, Any] = {}
    context_param = None
    for param in signature.parameters.values():
        annotation = hints.get(param.name, Any)
        if _is_run_context(annotation):
            context_param = param.name
            continue
        fields[param.name] = _field(name, param, annotation, arg_docs.get(param.name))
    model = _args_model(name, fields)
    return _Spec(
        model,
        _parameters(name, model),
        summary or name,
        context_param,
        inspect.iscoroutinefunction(fn),
    )


def _field(tool: str, param: inspect.Parameter, annotation: Any, doc: str | None) -> Any:
    if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
        raise FlowValidationError(
            f"tool {tool!r}: parameter {param.name!r} is {param.kind.description}; a tool "
            "is called with keyword arguments only, so give it plain named parameters"
        )
    default = ... if param.default is param.empty else param.default
    return (annotation, pydantic.Field(default, description=doc))


def _args_model(tool: str, fields: dict[str, Any]) -> type[BaseModel]:
    try:
        return pydantic.create_model(
            f"{tool}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
    except pydantic.PydanticUserError as exc:
        raise _schema_error(tool, exc) from exc


def _parameters(tool: str, model: type[BaseModel]) -> dict[str, Any]:
    try:
        schema = model.model_json_schema()
    except pydantic.PydanticUserError as exc:
        raise _schema_error(tool, exc) from exc
    return _strip_titles(schema)


def _schema_error(tool: str, exc: Exception) -> FlowValidationError:
    first_line = str(exc).splitlines()[0]
    return FlowValidationError(
        f"tool {tool!r}: its signature cannot become a JSON schema ({first_line}). Annotate "
        "each parameter with a JSON-friendly type: str, int, float, bool, list, dict, an "
        "Enum, a Literal, a pydantic model, a dataclass or a TypedDict"
    )


def _strip_titles(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles: they cost prompt tokens and say nothing."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {k: _strip_titles(v) if isinstance(v, dict) else v for k, v in value.items()}
        elif isinstance(value, dict):
            out[key] = _strip_titles(value)
        elif isinstance(value, list):
            out[key] = [_strip_titles(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out


def _is_run_context(annotation: Any) -> bool:
    """True for ``RunContext``, ``RunContext[T]`` and either of them ``| None``."""
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    for option in options:
        target = typing.get_origin(option) or option
        if isinstance(target, type) and issubclass(target, RunContext):
            return True
    return False


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its summary and its ``Args:`` entries."""
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        header = _SECTION.match(line)
        if header:
            section, current = header.group(1), None
        elif section is None:
            summary.append(line)
        elif section in _ARGS_SECTIONS:
            current = _arg_line(line, current, args)
    return "\n".join(summary).strip(), args


def _arg_line(line: str, current: str | None, args: dict[str, str]) -> str | None:
    match = _ARG_LINE.match(line)
    if match and len(line) - len(line.lstrip()) <= 4:
        current = match.group(1).lstrip("*")
        args[current] = match.group(3).strip()
    elif current and line.strip():
        args[current] = f"{args[current]} {line.strip()}"
    return current


def _describe(exc: pydantic.ValidationError, tool: str) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    return f"invalid arguments for tool {tool!r}: " + "; ".join(problems)
