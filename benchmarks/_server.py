"""A scripted server for the benchmarks, in its own process so that its CPU is not
counted as the client's. Prints its URL, serves until stdin closes.

    python -m benchmarks._server [--latency SECONDS]
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.reference import reply_for
from flowgraph.testing import ScriptedServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    with ScriptedServer(reply_for, latency=args.latency) as server:
        print(server.url, flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin


if __name__ == "__main__":
    main()
