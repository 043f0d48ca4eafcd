"""Known defects of the official annotation files, and what each protocol does about them.

Each entry names one clip, the defect it fixes (the check code a reader would otherwise raise), and what each
class scheme does with the clip: schemes in ``exclude_in`` leave it out (``exclude``), the others keep it
with the repair ``otherwise`` (``apex-unknown``: the annotated apex is dropped and the pipeline's apex
strategy, middle frame or motion estimate, chooses it). A reader that meets an entry reports it as an
``erratum`` in its validation report instead of an error, so a copy of the data with exactly the known defects
validates cleanly and a copy with new defects does not. Entries apply whether or not the defect is present in
the reader's copy (a corrected spreadsheet still yields the same protocol), and the report says when the
defect was not found.

Protocol counts on the official files (checked on fixtures written with the official emotion counts, see
:func:`convat.data.readers.fixtures.build_fixture`):

- CASME II 5-class (happiness, surprise, disgust, repression, others): **246** clips; the two errata clips are
  kept with their apex unknown, as in the literature's 246.
- CASME II in the MEGC2019 composite (``megc3``): 145 clips; both errata clips are left out, as the official
  composite list does.
- SAMM 5-class (anger, contempt, happiness, surprise, other): **136** clips; SAMM in the composite: 133.
- The MEGC2019 composite: **442** clips of 68 subjects.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Clips per (dataset, class scheme) on the official annotation files, as stated above; the readers give these
#: numbers on fixtures written with the official emotion counts (tests/test_readers.py).
PROTOCOL_COUNTS = {("casme2", "5class"): 246, ("casme2", "megc3"): 145, ("samm", "5class"): 136,
                   ("samm", "megc3"): 133, ("smic", "megc3"): 164, ("megc2019", "megc3"): 442}

#: What a scheme does with an erratum clip.
ACTIONS = ("exclude", "apex-unknown")


@dataclass(frozen=True)
class Erratum:
    """One known defect of one clip and how each class scheme handles it."""

    dataset: str
    subject: str
    clip: str
    defect: str
    reason: str
    exclude_in: tuple[str, ...] = ("megc3",)
    """Class schemes that leave the clip out."""
    otherwise: str = "apex-unknown"
    """What the other schemes do (see :data:`ACTIONS`)."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dataset, self.subject, self.clip)

    def action_for(self, scheme: str) -> str:
        """``exclude`` or the repair applied under ``scheme``."""
        return "exclude" if scheme in self.exclude_in else self.otherwise

    @property
    def action(self) -> str:
        """The actions per scheme in words, e.g. ``exclude in megc3; apex-unknown otherwise``."""
        return f"exclude in {', '.join(self.exclude_in)}; {self.otherwise} otherwise"


ERRATA: tuple[Erratum, ...] = (
    Erratum(
        dataset="casme2", subject="sub04", clip="EP12_01f", defect="unparsable-annotation",
        reason="ApexFrame is '/' in CASME2-coding-20140508.xlsx, so the clip has no apex. The MEGC2019 "
        "composite leaves it out (megc3); the 5-class protocol of the literature (246 clips) keeps it, so there "
        "its apex is unknown and chosen by the apex strategy.",
    ),
    Erratum(
        dataset="casme2", subject="sub05", clip="EP09_05f", defect="onset-equals-apex",
        reason="OnsetFrame equals ApexFrame, so the annotated onset-to-apex motion is empty (a zero flow field). "
        "The MEGC2019 composite leaves it out (megc3); the 5-class protocol keeps it with the annotated apex "
        "dropped (unknown), so the apex strategy chooses a frame with motion.",
    ),
)


def _index() -> dict[tuple[str, str, str], Erratum]:
    index: dict[tuple[str, str, str], Erratum] = {}
    for entry in ERRATA:
        if entry.otherwise not in ACTIONS:
            raise ValueError(f"erratum {entry.key}: unknown action {entry.otherwise!r}; accepted: {ACTIONS}")
        if not entry.reason.strip():
            raise ValueError(f"erratum {entry.key} has no reason")
        index[entry.key] = entry
    return index


_BY_CLIP = _index()


def lookup(dataset: str, subject: str, clip: str) -> Erratum | None:
    """The erratum for one clip, or ``None``."""
    return _BY_CLIP.get((dataset, subject, clip))


def errata_table(schemes: tuple[str, ...] = ("megc3", "5class")):
    """The errata as a DataFrame: dataset, clip, defect, the action under each scheme, and the reason."""
    import pandas as pd

    return pd.DataFrame([{"dataset": e.dataset, "clip": f"{e.subject}/{e.clip}", "defect": e.defect,
                          **{f"action ({s})": e.action_for(s) for s in schemes}, "reason": e.reason}
                         for e in ERRATA])
