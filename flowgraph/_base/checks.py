"""Checks of the settings a user writes, so that a wrong one fails where it is written,
as a ``FlowgraphError`` naming it and the fix, and not deep inside a run.

Settings of what is declared (a flow, a node, a tool, a policy) raise
``FlowValidationError``; arguments of a call (``flow.run(max_steps=0)``) pass
``error=UsageError``.
"""

from __future__ import annotations

import math
from typing import Any

from flowgraph._base.errors import FlowgraphError, FlowValidationError


def check_count(
    value: object, what: str, *, least: int = 1, error: type[FlowgraphError] = FlowValidationError
) -> int:
    """``value`` as a whole number of at least ``least``; else ``error`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise error(f"{what} must be at least {least} (a whole number), got {value!r}")
    return value


def check_seconds(
    value: object, what: str, *, error: type[FlowgraphError] = FlowValidationError
) -> float | None:
    """``value`` as a positive, finite number of seconds, or None (no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{what} must be a number of seconds (or None for no limit), got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise error(f"{what} must be more than 0 seconds and finite, got {value!r}")
    return float(value)


def check_number(value: object, what: str, *, least: float = 0.0) -> float:
    """``value`` as a finite number of at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FlowValidationError(f"{what} must be a number, got {value!r}")
    if not (value >= least and math.isfinite(value)):
        raise FlowValidationError(f"{what} must be finite and >= {least}, got {value!r}")
    return float(value)


def check_optional(value: Any, kind: type, what: str, fix: str) -> None:
    """``value`` is None or a ``kind``; else a ``FlowValidationError`` saying ``fix``."""
    if value is not None and not isinstance(value, kind):
        raise FlowValidationError(f"{what} is {value!r}, not a {kind.__name__}: {fix}")
