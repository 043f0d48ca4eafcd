"""Execute one generated notebook as Colab would (run by the simulated Colab's Python, see check.py).

Usage: python execute.py NOTEBOOK OUT_NOTEBOOK "NAME = value" ...  -- the assignments are injected in a cell right
after the notebook's parameters cell (as papermill does), so the chapter runs with e.g. a tiny budget.
Prints the install cell's output (the install log) and exits non-zero on the first failing cell.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(argv: list[str]) -> int:
    source, target, overrides = Path(argv[0]), Path(argv[1]), argv[2:]
    notebook = nbformat.read(source, as_version=4)
    at = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell("\n".join(overrides), metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(at + 1, injected)
    start = time.perf_counter()
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(target.parent)}})
    try:
        client.execute()
    finally:
        nbformat.write(notebook, target)
        install = notebook.cells[0]
        log = "".join(o.get("text", "") for o in install.get("outputs", []) if o.get("output_type") == "stream")
        print(f"--- install cell output ({source.name}) ---\n{log.strip() or '(none)'}")
    print(f"{source.name}: {len(notebook.cells)} cells executed in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
