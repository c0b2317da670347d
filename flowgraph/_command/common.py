"""What the ``flowgraph`` commands share: the error that means exit 2, the help texts
every command repeats, and small argument helpers."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

EXAMPLE = "examples/support.py:build_flow"
FORMATS = ("png", "svg", "pdf", "dot")
TARGET_HELP = (
    "the flow: FILE.py:NAME, NAME a flowgraph.Flow or a function with no required "
    "arguments that returns one; FILE.py alone picks the file's only Flow"
)
EXIT_CODES = """\
exit codes:
  0    success
  1    the run failed (the error and the node where it stopped go to stderr)
  2    bad command line, file or attribute
  3    the flow is not valid (flowgraph.FlowValidationError)
  4    a configuration problem: graphviz's `dot` missing, no model configured
  5    the run is waiting for a reply (a Human node): its prompt goes to stdout
  130  interrupted (Ctrl-C)"""


class CliError(Exception):
    """A bad command line, file or attribute: exit 2 with this message."""


def add_command(
    commands: Commands, name: str, summary: str, epilog: str
) -> argparse.ArgumentParser:
    """A (sub)command's parser, its description made from ``summary``."""
    return commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"
