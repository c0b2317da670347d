"""Rendering a generated 1,000-node, 3,000-edge flow to SVG: flowgraph's own part
(building the DOT text) against the `dot` program's layout, measured in one run."""

from __future__ import annotations

import itertools
import random
import statistics
import subprocess
import time
from typing import Any

import flowgraph as fg

NODES, EDGES = 1000, 3000
SPAN = 10  # how far ahead a generated hand-off may reach, as in real flows


def never(ctx: fg.RunContext[dict[str, Any]]) -> bool:
    return False


def build(nodes: int = NODES, edges: int = EDGES, seed: int = 7) -> fg.Flow:
    """A chain of tool steps and agents, plus random predicate and LLM edges to nodes
    up to ``SPAN`` steps ahead (random edges across the whole graph make any layered
    layout, `dot`'s included, take hours: no flow looks like that)."""
    rng = random.Random(seed)
    flow = fg.Flow("generated", model=fg.OpenAIModel("m", base_url="http://127.0.0.1:9/v1"))
    names = [f"n{index}" for index in range(nodes)]
    for index, name in enumerate(names):
        node: fg.Node = fg.Agent(name, "x") if index % 3 == 0 else fg.ToolStep(name, lambda: None)
        flow.add(node)
    flow.edge(fg.START, names[0])
    for first, second in itertools.pairwise(names):
        flow.edge(first, second)
    flow.edge(names[-1], fg.END)
    while len(flow.edges) < edges:
        source = rng.randrange(nodes - 1)
        target = min(nodes - 1, source + rng.randint(1, SPAN))  # hand-offs reach ahead
        when: Any = never if rng.random() < 0.5 else f"Condition {len(flow.edges)} holds."
        flow.edge(names[source], names[target], when=when)
    return flow


def measure(repeats: int = 3) -> dict[str, Any]:
    flow = build()
    build_s, dot_s = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        text = flow.to_dot()
        build_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True, check=True)
        dot_s.append(time.perf_counter() - started)
    ours, theirs = statistics.median(build_s), statistics.median(dot_s)
    return {
        "nodes": len(flow.nodes),
        "edges": len(flow.edges),
        "build_s": ours,
        "dot_s": theirs,
        "share": ours / theirs,
        "growth": growth(),
    }


def growth(small: int = 1000, large: int = 10_000) -> float:
    """DOT text time per edge at ``large`` nodes over at ``small`` (1.0: linear; it was
    about 6 when each fallback edge looked at every edge)."""
    per_edge = []
    for nodes in (small, large):
        flow = build(nodes, 3 * nodes)
        started = time.perf_counter()
        flow.to_dot()
        per_edge.append((time.perf_counter() - started) / len(flow.edges))
    return per_edge[1] / per_edge[0]


if __name__ == "__main__":
    figures = measure()
    print(
        f"{figures['nodes']} nodes, {figures['edges']} edges to SVG: DOT text "
        f"{figures['build_s'] * 1000:.0f} ms, dot {figures['dot_s']:.1f} s -> flowgraph's "
        f"part is {figures['share']:.1%} of dot's time; per edge, 10,000 nodes take "
        f"{figures['growth']:.1f}x as long as 1,000"
    )
