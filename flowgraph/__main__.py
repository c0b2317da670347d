"""``python -m flowgraph``: the ``flowgraph`` command (see ``flowgraph._cli``)."""

from __future__ import annotations

from flowgraph._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
