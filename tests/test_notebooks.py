"""Every notebook runs top to bottom in a real Jupyter kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_the_notebook_runs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)

    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()

    outputs = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]
    assert not [output for output in outputs if output.get("output_type") == "error"]
    text = "".join(output.get("text", "") for output in outputs)
    # In Jupyter flow.run() blocking the kernel's loop is expected: no RuntimeWarning.
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "Warning" not in stderr, stderr
    if path.stem == "quickstart":
        assert "path: ['triage', 'refund', 'receipt']" in text
        assert "Your |refund |for A-1 |is on its way.|" in text  # streamed, piece by piece
        assert "last: run_finished ['triage', 'refund', 'receipt']" in text
        assert any("image/svg+xml" in output.get("data", {}) for output in outputs)
        live = notebook.cells[-1].outputs  # the live display, updated in place to the end
        pictures = [
            o["data"]["image/svg+xml"] for o in live if "image/svg+xml" in o.get("data", {})
        ]
        assert len(pictures) == 1 and "→ end" in pictures[0]
    if path.stem == "handoffs":
        assert "path: ['triage', 'vip_desk']" in text
        assert "Error: no hand-off from triage to 'billing' is declared" in text
        assert "flow 'broken' is not valid:" in text
        assert any("image/svg+xml" in output.get("data", {}) for output in outputs)
    if path.stem == "nested_chats":
        assert "path: customer_agent -> verify -> refund_specialist" in text
        assert "Summarise the conversation into a few key words\\nContext:\\nHi" in text
    if path.stem == "hooks":
        assert "   system | Research: Returns are accepted within 30 days" in text
        assert "handoff agent -> manager (predicate)" in text
    if path.stem == "testing":
        assert "400 {'message': \"An assistant message with 'tool_calls' must be" in text
        assert "2 tests passed" in text


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS
