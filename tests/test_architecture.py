"""The shape of the package, as ARCHITECTURE.md states it: short functions and modules,
imports at the top, and a public surface that hands out only public types. (The
layers themselves are checked by `lint-imports`, in `make test`.)"""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path
from typing import Any

import flowgraph as fg

PACKAGE = Path(fg.__file__).parent
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 600

# Imports inside a function, each deferring a heavy or optional dependency (the line
# above it says why): (module, imported module).
DEFERRED = {
    ("_llm/models.py", "openai"),
    ("_draw/dot.py", "graphviz"),
    ("_draw/render.py", "graphviz"),
    ("_draw/live.py", "IPython"),
    ("_draw/live.py", "IPython.display"),
    ("testing/_http.py", "resource"),
    # The facade's drawing: most programs never draw, and it is a twentieth of the import.
    ("_flow.py", "flowgraph._draw"),
    ("_flow.py", "flowgraph._draw.live"),
}
# Public names that hand out a private type, each for a stated reason.
PRIVATE_ALLOWED = {
    # The record a Checkpointer is given and gives back. Whether it becomes public or
    # the protocol narrows is for the stores beyond one machine (issue 22) to settle.
    "Commit",
    # Plumbing of flowgraph's own stores (the journal's batches); users never call it.
    "HeldSteps",
    "Step",
    # Flow is a FlowSpec: where a Flow is accepted, the base class is what is written.
    "FlowSpec",
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [node for node in ast.walk(tree) if isinstance(node, kinds)]


def test_no_module_over_600_lines_and_no_function_over_60() -> None:
    too_long = []
    for path in _modules():
        source = path.read_text()
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(PACKAGE)}: {lines} lines")
        for function in _functions(ast.parse(source)):
            length = (function.end_lineno or function.lineno) - function.lineno + 1
            if length > MAX_FUNCTION_LINES:
                where = f"{path.relative_to(PACKAGE)}:{function.lineno}"
                too_long.append(f"{where} {function.name}(): {length} lines")
    assert too_long == []


def test_imports_sit_at_the_top_unless_they_defer_a_heavy_dependency() -> None:
    found = set()
    for path in _modules():
        source = path.read_text()
        lines = source.splitlines()
        for function in _functions(ast.parse(source)):
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                else:
                    continue
                module = path.relative_to(PACKAGE).as_posix()
                found.update((module, name) for name in names)
                said = lines[node.lineno - 4 : node.lineno]  # a comment just above, or on it
                assert any("#" in line for line in said), f"{module}:{node.lineno} says not why"
    assert found == DEFERRED


def _classes(annotation: Any) -> set[type]:
    found = {annotation} if isinstance(annotation, type) else set()
    origin = typing.get_origin(annotation)
    if isinstance(origin, type):
        found.add(origin)
    for argument in typing.get_args(annotation):
        found |= _classes(argument)
    return found


def test_public_names_hand_out_public_types() -> None:
    public = {getattr(fg, name) for name in fg.__all__}
    private = set()
    for name in fg.__all__:
        cls = getattr(fg, name)
        if not isinstance(cls, type):
            continue
        for attribute, member in inspect.getmembers(cls):
            function = member.fget if isinstance(member, property) else member
            if attribute.startswith("_") or not callable(function):
                continue
            try:
                hints = typing.get_type_hints(function)
            except (NameError, TypeError):  # a builtin's, or a stub's
                continue
            for kind in (k for hint in hints.values() for k in _classes(hint)):
                if kind.__module__.startswith("flowgraph.") and kind not in public:
                    private.add((f"{name}.{attribute}", kind.__name__))
    assert {kind for _, kind in private} <= PRIVATE_ALLOWED, sorted(private)


def test_exported_errors_show_as_flowgraph_names() -> None:
    errors = [getattr(fg, name) for name in fg.__all__]
    errors = [e for e in errors if isinstance(e, type) and issubclass(e, BaseException)]
    assert len(errors) == 9
    for error in errors:
        assert f"{error.__module__}.{error.__qualname__}" == f"flowgraph.{error.__name__}"


def test_exported_classes_keep_their_annotations_readable() -> None:
    # Only errors are renamed: pydantic and typing read a class's annotations in the
    # module it names.
    for name in fg.__all__:
        cls = getattr(fg, name)
        if isinstance(cls, type) and not issubclass(cls, BaseException):
            assert cls.__module__.startswith("flowgraph._"), name
            typing.get_type_hints(cls)  # raises NameError if a name does not resolve


def test_the_removed_leaks_stay_removed() -> None:
    assert fg.Flow.model_of.__qualname__ == "Flow.model_of"
    assert not hasattr(fg.Flow, "plan")  # it returned a private type
    assert not hasattr(fg.Node, "visit")  # not an extension point: the engine visits nodes
