"""A scripted server for the benchmarks, in its own process so that its CPU is not
counted as the client's. Prints its URL, serves until stdin closes.

    python -m benchmarks._server [--latency SECONDS] [--turns N] [--chunks N]
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.long import long_reply
from benchmarks.reference import reply_for
from flowgraph.testing import ScriptedServer, streamed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument(
        "--turns", type=int, default=0, help="the long tool loop of long.py, not the reference"
    )
    parser.add_argument(
        "--chunks", type=int, default=0, help="answer every request with a text in N chunks"
    )
    args = parser.parse_args()
    script = long_reply(args.turns) if args.turns else reply_for
    if args.chunks:
        answer = streamed(*["word "] * args.chunks)
        script = lambda request: answer  # noqa: E731 - the same answer to every request
    with ScriptedServer(script, latency=args.latency) as server:
        print(server.url, flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin


if __name__ == "__main__":
    main()
