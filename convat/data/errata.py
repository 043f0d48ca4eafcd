"""Known defects of the official annotation files, and what the readers do about them.

Each entry names one clip, the defect it fixes (the check code a reader would otherwise raise), the action
(``exclude``: leave the clip out of every protocol) and the reason. A reader that meets an entry reports it as
an ``erratum`` in its validation report instead of an error, so a copy of the data with exactly the known
defects validates cleanly and a copy with new defects does not. Entries apply whether or not the defect is
present in the reader's copy (a corrected spreadsheet still yields the same protocol), and the report says
when the defect was not found.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Erratum:
    """One known defect of one clip and how it is handled."""

    dataset: str
    subject: str
    clip: str
    defect: str
    action: str
    reason: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dataset, self.subject, self.clip)


ACTIONS = ("exclude",)

ERRATA: tuple[Erratum, ...] = (
    Erratum(
        dataset="casme2", subject="sub04", clip="EP12_01f", defect="unparsable-annotation", action="exclude",
        reason="ApexFrame is '/' in CASME2-coding-20140508.xlsx, so the clip has no apex; the MEGC2019 "
        "composite leaves it out, and so do we in every scheme rather than guess an apex.",
    ),
    Erratum(
        dataset="casme2", subject="sub05", clip="EP09_05f", defect="onset-equals-apex", action="exclude",
        reason="OnsetFrame equals ApexFrame, so the onset-to-apex motion is empty (a zero flow field); the "
        "MEGC2019 composite leaves it out.",
    ),
)


def _index() -> dict[tuple[str, str, str], Erratum]:
    index: dict[tuple[str, str, str], Erratum] = {}
    for entry in ERRATA:
        if entry.action not in ACTIONS:
            raise ValueError(f"erratum {entry.key}: unknown action {entry.action!r}; accepted: {ACTIONS}")
        if not entry.reason.strip():
            raise ValueError(f"erratum {entry.key} has no reason")
        index[entry.key] = entry
    return index


_BY_CLIP = _index()


def lookup(dataset: str, subject: str, clip: str) -> Erratum | None:
    """The erratum for one clip, or ``None``."""
    return _BY_CLIP.get((dataset, subject, clip))
