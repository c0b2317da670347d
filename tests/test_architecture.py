"""The shape of the package, as ARCHITECTURE.md states it: short functions and modules,
imports at the top, and a public surface that hands out only public types. (The
layers themselves are checked by `lint-imports`, in `make test`.)"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import typing
from pathlib import Path
from typing import Any

import graphviz
import networkx
import openai

import flowgraph as fg
import flowgraph.events
import flowgraph.stores
import flowgraph.testing

PACKAGE = Path(fg.__file__).parent
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 600

# Imports inside a function, each deferring a heavy or optional dependency (the line
# above it says why): (module, imported module).
DEFERRED = {
    ("_llm/models.py", "openai"),
    ("_llm/local.py", "urllib.request"),  # probing the bundled llama server
    ("_draw/dot.py", "graphviz"),
    ("_draw/render.py", "graphviz"),
    ("_draw/live.py", "IPython"),
    ("_draw/live.py", "IPython.display"),
    ("testing/_http.py", "resource"),
    # The SQLite store, with the sqlite3 driver: most programs keep no store.
    ("__init__.py", "flowgraph._store.sqlite"),
    ("_store/open.py", "flowgraph._store.sqlite"),
    # The facade's drawing: most programs never draw, and it is a twentieth of the import.
    ("_flow.py", "flowgraph._draw"),
    ("_flow.py", "flowgraph._draw.live"),
    # Streaming, with the events' pydantic models: most programs never stream.
    ("_streaming.py", "flowgraph._engine.stream"),
}
# Private types a public signature may take (never return), each for a stated reason:
# Flow is a FlowSpec, and where a flow is accepted the base class is what is written.
PRIVATE_PARAMETERS = {"FlowSpec"}
PUBLIC_MODULES = (fg, flowgraph.events, flowgraph.stores, flowgraph.testing)


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


def _hints(function: Any) -> dict[str, Any]:
    """A flowgraph function's annotations, those imported only for type checking too."""
    importlib.import_module("flowgraph._draw.live")  # deferred by the facade
    names: dict[str, Any] = {"nx": networkx, "graphviz": graphviz}
    names["AsyncOpenAI"] = openai.AsyncOpenAI
    for module in [m for n, m in sys.modules.items() if n.startswith("flowgraph.")]:
        names.update(vars(module))
    return typing.get_type_hints(function, localns=names)


def test_public_names_hand_out_public_types() -> None:
    public = {getattr(m, name) for m in PUBLIC_MODULES for name in m.__all__}
    private = set()
    for cls in [c for c in public if isinstance(c, type)]:
        for attribute, member in inspect.getmembers(cls):
            function = member.fget if isinstance(member, property) else member
            if attribute.startswith("_") or not callable(function):
                continue
            if not (getattr(function, "__module__", "") or "").startswith("flowgraph."):
                continue  # inherited from Python or pydantic
            for where, hint in _hints(function).items():
                for kind in _classes(hint):
                    allowed = where != "return" and kind.__name__ in PRIVATE_PARAMETERS
                    if kind.__module__.startswith("flowgraph.") and not (kind in public or allowed):
                        private.add((f"{cls.__name__}.{attribute}", where, kind.__name__))
    assert private == set()


def test_exported_errors_show_as_flowgraph_names() -> None:
    errors = [getattr(fg, name) for name in fg.__all__]
    errors = [e for e in errors if isinstance(e, type) and issubclass(e, BaseException)]
    assert len(errors) == 11  # ten errors and FlowgraphWarning
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
