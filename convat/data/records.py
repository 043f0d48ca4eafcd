"""The clip record shared by SynthME and the real-dataset readers.

Every stage downstream of data loading (preprocessing, LOSO, metrics, explanations) sees only
:class:`ClipRecord` objects, so a chapter can switch from SynthME to CASME II by changing one parameter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class FrameSource(ABC):
    """Where a clip's frames come from: image files on disk or a deterministic generator."""

    @abstractmethod
    def load(self, indices: list[int] | None = None) -> np.ndarray:
        """Frames as a ``(T, H, W, 3)`` uint8 RGB array (all frames, or those at ``indices``)."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A string that changes whenever the frames could change; used as part of cache keys."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of frames in the clip."""


@dataclass(frozen=True)
class DiskFrames(FrameSource):
    """Frames stored as image files, in temporal order."""

    paths: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, indices: list[int] | None = None) -> np.ndarray:
        import cv2

        chosen = self.paths if indices is None else [self.paths[i] for i in indices]
        frames = []
        for path in chosen:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise FileNotFoundError(f"cannot read frame image {path}")
            frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        return np.stack(frames)

    def fingerprint(self) -> str:
        parts = []
        for path in self.paths:
            stat = path.stat()
            parts.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
        import hashlib

        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass
class ClipRecord:
    """One micro-expression clip: identity, label, temporal annotation and a frame source.

    Frame indices (``onset``, ``apex``, ``offset``) are 0-based positions into the clip's frame
    sequence, not the dataset's own frame numbers, which are kept in ``extra['frame_numbers']``
    by readers that have them. ``apex`` is ``None`` where the dataset has no apex annotation (SMIC).
    ``truth`` carries SynthME's ground truth (displacement field, AU masks, ...) and is ``None``
    for real data.
    """

    dataset: str
    subject: str
    clip: str
    label: str
    onset: int
    apex: int | None
    offset: int
    frames: FrameSource
    aus: tuple[str, ...] = ()
    emotion: str = ""
    truth: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A unique, human-readable name: ``dataset/subject/clip``."""
        return f"{self.dataset}/{self.subject}/{self.clip}"

    @property
    def n_frames(self) -> int:
        return len(self.frames)


def records_table(records: list[ClipRecord]):
    """The records as a pandas DataFrame (one row per clip), for counts and joins."""
    import pandas as pd

    return pd.DataFrame(
        {
            "dataset": [r.dataset for r in records],
            "subject": [r.subject for r in records],
            "clip": [r.clip for r in records],
            "label": [r.label for r in records],
            "onset": [r.onset for r in records],
            "apex": [r.apex for r in records],
            "offset": [r.offset for r in records],
            "n_frames": [r.n_frames for r in records],
            "aus": ["+".join(r.aus) for r in records],
        }
    )
