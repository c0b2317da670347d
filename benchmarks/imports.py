"""Import time: `import flowgraph` against `import openai`, each in a fresh interpreter."""

from __future__ import annotations

import statistics
import subprocess
import sys
from typing import Any

TIMER = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _once(module: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", TIMER.format(module=module)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout)


def measure(repeats: int = 15) -> dict[str, Any]:
    """``both`` imports flowgraph and openai: what a first run loads (openai is lazy)."""
    samples: dict[str, list[float]] = {"openai": [], "flowgraph": [], "flowgraph, openai": []}
    for module in samples:  # warm the file cache
        _once(module)
    for _ in range(repeats):
        for module in samples:
            samples[module].append(_once(module))
    openai_s = statistics.median(samples["openai"])
    flowgraph_s = statistics.median(samples["flowgraph"])
    both_s = statistics.median(samples["flowgraph, openai"])
    return {
        "openai_ms": openai_s * 1e3,
        "flowgraph_ms": flowgraph_s * 1e3,
        "ratio": flowgraph_s / openai_s,
        "both_ms": both_s * 1e3,
        "both_ratio": both_s / openai_s,
    }


if __name__ == "__main__":
    figures = measure()
    print(
        f"import openai {figures['openai_ms']:.0f} ms, import flowgraph "
        f"{figures['flowgraph_ms']:.0f} ms ({figures['ratio']:.2f}x); flowgraph and openai "
        f"{figures['both_ms']:.0f} ms ({figures['both_ratio']:.2f}x)"
    )
