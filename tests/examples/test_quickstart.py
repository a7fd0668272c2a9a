"""examples/quickstart.ipynb runs from top to bottom in a real Jupyter kernel (this venv's
ipykernel), with its objective defined in a cell: the Python API end to end."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells
                   if cell.cell_type == "code"), "commit the notebook without outputs"
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = {i: cell.outputs for i, cell in enumerate(notebook.cells)
               if cell.cell_type == "code"}
    errors = [o for cell in outputs.values() for o in cell if o.output_type == "error"]
    assert not errors
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for cell in outputs.values() for o in cell)
    assert "score " in text and "changed sites" in text
    assert "status" in text and "params_num_layers" in text  # the DataFrame
    assert (tmp_path / "quickstart-report.html").stat().st_size > 10_000
    assert (tmp_path / "runs" / "quickstart" / "run.sqlite").is_file()
