"""The examples in flowgraph.testing's docstrings run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "",
    "._errors",
    "._faults",
    "._http",
    "._invalid",
    "._items",
    "._schema",
    "._script",
    "._server",
    "._strict",
]


@pytest.mark.parametrize("suffix", MODULES)
def test_docstring_examples_run(suffix: str) -> None:
    module = importlib.import_module("flowgraph.testing" + suffix)
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert results.failed == 0
    assert results.attempted > 0
