"""Google Colab helpers: the real datasets from Google Drive, and whether we run on Colab at all.

On Colab the licensed datasets live in the reader's own Google Drive, in one folder laid out as the data root
of the readers (``CASME2/``, ``SAMM/``, ``SMIC/``; see the real-datasets chapter). :func:`drive_data_root`
mounts the Drive (Colab asks for permission once) and returns that folder, so a chapter's parameters cell
reads ``DATA_ROOT = drive_data_root()``. Nothing here is needed, or imported, outside Colab.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Where Colab mounts Google Drive.
DRIVE_MOUNT = "/content/drive"

#: The data root inside the mounted Drive (``My Drive/convat-data``), unless ``$CONVAT_DRIVE_DATA`` says otherwise.
DRIVE_DATA_ROOT = f"{DRIVE_MOUNT}/MyDrive/convat-data"


def on_colab() -> bool:
    """True inside a Google Colab runtime (its ``google.colab`` module is importable there and only there)."""
    if "google.colab" in sys.modules:
        return True
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def drive_data_root(folder: str | Path | None = None, mount: bool = True) -> Path:
    """The data root of the real datasets in Google Drive, after mounting the Drive on Colab.

    ``folder`` defaults to ``$CONVAT_DRIVE_DATA`` or :data:`DRIVE_DATA_ROOT`. The folder must hold at least one
    of ``CASME2/``, ``SAMM/`` or ``SMIC/``; otherwise a one-line error names the folder and what it holds.
    ``$CONVAT_DATA`` is set to the result, so every chapter and command that reads data finds it.
    """
    path = Path(folder or os.environ.get("CONVAT_DRIVE_DATA") or DRIVE_DATA_ROOT)
    if mount and on_colab() and not path.exists():
        from google.colab import drive

        drive.mount(DRIVE_MOUNT)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder; copy CASME2/, SAMM/ and SMIC/ into it in your Google Drive "
                                "(see the real-datasets chapter) or pass the folder that holds them")
    found = [name for name in ("CASME2", "SAMM", "SMIC") if (path / name).is_dir()]
    if not found:
        present = sorted(p.name for p in path.iterdir())[:8]
        raise FileNotFoundError(f"{path}: none of CASME2/, SAMM/, SMIC/ inside (found {present or 'nothing'})")
    os.environ["CONVAT_DATA"] = str(path)
    return path
