"""Data: the shared clip record, the SynthME generator and the real-dataset readers (``convat.data.readers``)."""

from importlib.resources import files
from pathlib import Path


def composite_list_path() -> Path:
    """The official MEGC2019 composite sample list shipped with the package (442 rows)."""
    return Path(str(files("convat.data") / "megc2019_composite.csv"))
