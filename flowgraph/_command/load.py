"""Finding the flow a command names: ``FILE.py:NAME`` (a fg.Flow, or a function with no
required arguments that returns one) or ``FILE.py`` (its only module-level fg.Flow)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import flowgraph as fg
from flowgraph._command.common import EXAMPLE, CliError


def load_flow(target: str) -> fg.Flow:
    """The flow ``target`` names: ``FILE.py:NAME`` or ``FILE.py``.

    Raises:
        CliError: no such file or attribute, or it is not a flow; the message says
            what the file does offer.
    """
    path, name = _split_target(target)
    module = _import_file(path)
    if name is None:
        return _only_flow(module, path)
    if not hasattr(module, name):
        raise CliError(f"{path} has no attribute {name!r}; {_offer(module, path)}")
    return _as_flow(getattr(module, name), f"{path}:{name}")


def _split_target(target: str) -> tuple[Path, str | None]:
    file, colon, name = target.rpartition(":")
    # A colon may belong to the path (C:\flows\x.py): only a name after it splits.
    if not colon or not (name.isidentifier() or file.endswith(".py")):
        return Path(target), None
    if not name.isidentifier():
        raise CliError(f"{name!r} in {target!r} is not a Python name: write FILE.py:NAME")
    return Path(file), name


def _import_file(path: Path) -> ModuleType:
    """Import the file as a module named after its stem, its directory first on sys.path."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise CliError(f"{str(path)!r} {what}: give a Python file, e.g. {EXAMPLE}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise CliError(f"{str(path)!r} is not a Python file: give a .py file, e.g. {EXAMPLE}")
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))  # so that its sibling imports work
    # Registered for pydantic and dataclasses, which look their module up; never over
    # a module already loaded: a flow file named json.py must not replace json.
    sys.modules.setdefault(spec.name, module)
    _call_user_code(lambda: loader.exec_module(module), f"cannot load {path}", path)
    return module


def _call_user_code(fn: Callable[[], Any], failure: str, path: Path) -> Any:
    """Call the user's code; its exceptions become one line that says where."""
    try:
        return fn()
    except fg.FlowgraphError:
        raise  # a broken flow (exit 3), a configuration problem (exit 4), ...
    except Exception as exc:
        raise CliError(f"{failure}: {_describe(exc, path)}") from exc


def _describe(exc: Exception, path: Path) -> str:
    """``ValueError: boom (x.py, line 3)``: the error and its last line in the user's file."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc}"
    mine = path.resolve()
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == mine
    ]
    where = f" ({path}, line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _as_flow(value: object, where: str) -> fg.Flow:
    """``value`` if it is a fg.Flow; its result if it is a function that builds one."""
    if isinstance(value, fg.Flow):
        return value
    if not callable(value):
        raise CliError(
            f"{where} is a {type(value).__name__}, not a flowgraph.Flow "
            "or a function that returns one"
        )
    required = _required_parameters(value)
    if required:
        raise CliError(
            f"{where} needs arguments ({', '.join(required)}): the command calls it with "
            "none; give them defaults, or name a function that needs none"
        )
    path = Path(where.rpartition(":")[0])
    built = _call_user_code(value, f"{where}() failed", path)
    if not isinstance(built, fg.Flow):
        raise CliError(f"{where}() returned a {type(built).__name__}, not a flowgraph.Flow")
    return built


def _required_parameters(fn: Callable[..., Any]) -> list[str]:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []  # no signature to read (a builtin): let the call tell
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in parameters if p.default is p.empty and p.kind not in variadic]


def _flows(module: ModuleType) -> dict[str, fg.Flow]:
    """The module's fg.Flow-valued attributes, each flow once (under its first name)."""
    found: dict[int, tuple[str, fg.Flow]] = {}
    for name, value in vars(module).items():
        if isinstance(value, fg.Flow) and not name.startswith("__"):
            found.setdefault(id(value), (name, value))
    return dict(found.values())


def _factories(module: ModuleType) -> list[str]:
    """The module's own functions annotated to return a fg.Flow that need no arguments."""
    names = []
    for name, value in vars(module).items():
        if inspect.isfunction(value) and value.__module__ == module.__name__:
            returns = inspect.signature(value).return_annotation
            named = isinstance(returns, str) and returns.rpartition(".")[2] == "fg.Flow"
            if (returns is fg.Flow or named) and not _required_parameters(value):
                names.append(name)
    return names


def _offer(module: ModuleType, path: Path) -> str:
    """What the file offers instead, as the end of an error message."""
    names = [*_flows(module), *(f"{name}()" for name in _factories(module))]
    if not names:
        return "it defines no flowgraph.Flow, nor a function annotated `-> Flow`"
    return f"it has {', '.join(names)}: name one, e.g. {path}:{names[0].rstrip('()')}"


def _only_flow(module: ModuleType, path: Path) -> fg.Flow:
    flows = _flows(module)
    if len(flows) == 1:
        return next(iter(flows.values()))
    if len(flows) > 1:
        raise CliError(f"{path} has several flows; {_offer(module, path)}")
    raise CliError(f"{path} has no module-level flowgraph.Flow; {_offer(module, path)}")
