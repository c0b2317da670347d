"""``python -m flowgraph``: the ``flowgraph`` command (see ``flowgraph._command.main``)."""

from __future__ import annotations

from flowgraph._command.main import main

if __name__ == "__main__":
    raise SystemExit(main())
