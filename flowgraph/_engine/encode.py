"""The run's values as the JSON a commit holds: the context variables (and back),
and a node's output."""

from __future__ import annotations

import importlib
import json
import json.encoder
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from flowgraph._base.failures import RunError


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: pydantic models and the like converted, anything else
    as its text (a node's output is kept for show, not computed with)."""
    if type(value) in PLAIN_OUTPUTS:
        return value  # most outputs: no conversion to pay for at every commit
    return to_jsonable_python(value, fallback=str)


PLAIN_OUTPUTS = frozenset({str, int, float, bool, type(None)})  # JSON data as they are


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _c_encoder() -> Callable[[Any], str]:
    """json's C encoder made once (``JSONEncoder.encode`` makes one per call, which
    costs more than encoding a small context). It does not look for cycles: a cycle
    ends in RecursionError, and ``_ENCODER`` then tells what is wrong."""
    make = getattr(json.encoder, "c_make_encoder", None)  # not in the type stubs
    if make is None:  # a Python without json's C accelerator
        return _ENCODER.encode
    no_cycle_check, indent, sort_keys, skip_keys, allow_nan = None, None, False, False, True
    chunks = make(
        no_cycle_check,
        _ENCODER.default,
        json.encoder.encode_basestring,
        indent,
        ":",
        ",",
        sort_keys,
        skip_keys,
        allow_nan,
    )
    return lambda value: "".join(chunks(value, 0))


_ENCODE = _c_encoder()


PLAIN = frozenset({str, int, bool, type(None)})  # values every JSON encoder writes alike


def dump_context(context: Any, run_id: str) -> tuple[str, str | None]:
    """The context variables as JSON text, and the pydantic model's import path."""
    if type(context) is dict:
        for key, value in context.items():
            if type(key) is not str or type(value) not in PLAIN:
                break
        else:  # most contexts: flat, of plain values, which orjson writes fastest
            try:
                return orjson.dumps(context).decode(), None
            except orjson.JSONEncodeError:
                pass  # an int over 64 bits
    elif isinstance(context, BaseModel):
        kind = type(context)
        return context.model_dump_json(), f"{kind.__module__}:{kind.__qualname__}"
    try:
        return _ENCODE(context), None
    except (TypeError, ValueError, RecursionError):
        pass  # encode again, checking for cycles, to say what is wrong
    try:
        return _ENCODER.encode(context), None
    except (TypeError, ValueError) as exc:
        raise RunError(
            f"run {run_id}: the context variables cannot be stored as JSON "
            f"({_offender(context) or exc}). Keep JSON values in them (str, int, float, bool, "
            "None, lists, dicts) or make the context a pydantic model",
        ) from exc


def _offender(context: Any) -> str | None:
    if isinstance(context, dict):
        for key, value in context.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                return f"{key!r} holds a value of type {type(value).__name__}"
    return None


def load_context(text: str | None, kind: str | None) -> Any:
    """The context variables back from ``dump_context``'s text."""
    if text is None:
        return {}
    if kind is None:
        return json.loads(text)
    module, _, qualname = kind.partition(":")
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise RunError(
            f"the run's context is a {kind}, which cannot be imported here ({exc}); resume "
            "where that class can be imported"
        ) from exc
    if not (isinstance(target, type) and issubclass(target, BaseModel)):
        raise RunError(f"the stored context type {kind} is not a pydantic model")
    return target.model_validate_json(text)
