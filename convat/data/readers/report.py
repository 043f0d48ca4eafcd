"""The validation report every reader returns: what is wrong with a copy of a dataset, and where.

A reader checks each annotation row against the frames on disk and records one :class:`Issue` per problem,
naming the dataset, the file (spreadsheet or clip folder), the spreadsheet row and the frame, so that a reader
of the report can open the file and find the problem without a debugger.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: Severities, most serious first. ``error``: the clip cannot be used and is left out (a strict read raises);
#: ``warning``: the clip is used but something looks wrong, or a problem on a clip the class scheme does not
#: use; ``erratum``: a known defect handled by :mod:`convat.data.errata`; ``note``: what the reader detected
#: and accepted (layout, header row, file version).
SEVERITIES = ("error", "warning", "erratum", "note")


def _plural(word: str, count: int) -> str:
    if count == 1:
        return word
    return "errata" if word == "erratum" else word + "s"


class DatasetError(Exception):
    """A dataset cannot be read as expected: wrong root, missing spreadsheet, unknown format, or (in a
    strict read) annotation errors. The message says what was expected where."""


@dataclass
class Issue:
    """One problem (or one accepted deviation) found while reading a dataset."""

    severity: str
    code: str
    dataset: str
    message: str
    file: str = ""
    row: int | None = None
    clip: str = ""
    frame: int | str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; accepted: {', '.join(SEVERITIES)}")

    def location(self) -> str:
        """``dataset file row N clip frame F``, leaving out the parts that do not apply."""
        parts = [self.dataset]
        if self.file:
            parts.append(self.file)
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.clip:
            parts.append(self.clip)
        if self.frame is not None:
            parts.append(f"frame {self.frame}")
        return " ".join(parts)

    def __str__(self) -> str:
        return f"{self.severity.upper():8s}{self.location()}: {self.message} [{self.code}]"


@dataclass
class ValidationReport:
    """All issues found while reading one dataset (or the composite), plus row and record counts."""

    dataset: str
    issues: list[Issue] = field(default_factory=list)
    n_rows: int = 0
    n_records: int = 0

    def add(self, severity: str, code: str, message: str, **where) -> Issue:
        issue = Issue(severity, code, where.pop("dataset", self.dataset), message, **where)
        self.issues.append(issue)
        return issue

    def extend(self, other: ValidationReport) -> None:
        self.issues.extend(other.issues)
        self.n_rows += other.n_rows

    def by_severity(self, severity: str) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == severity]

    @property
    def errors(self) -> list[Issue]:
        return self.by_severity("error")

    @property
    def warnings(self) -> list[Issue]:
        return self.by_severity("warning")

    @property
    def ok(self) -> bool:
        """True when no clip had to be left out because of an error."""
        return not self.errors

    def summary(self) -> str:
        counts = Counter(issue.severity for issue in self.issues)
        tally = ", ".join(f"{counts.get(s, 0)} {_plural(s, counts.get(s, 0))}" for s in SEVERITIES)
        return f"{self.dataset}: {self.n_rows} annotated clips read, {self.n_records} records; {tally}"

    def format(self, severities: tuple[str, ...] = SEVERITIES, limit: int | None = None) -> str:
        """The summary line followed by one line per issue, most serious first."""
        order = {s: i for i, s in enumerate(SEVERITIES)}
        chosen = sorted((i for i in self.issues if i.severity in severities), key=lambda i: order[i.severity])
        lines = [self.summary()] + [str(issue) for issue in chosen[:limit]]
        if limit is not None and len(chosen) > limit:
            lines.append(f"... and {len(chosen) - limit} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def to_frame(self):
        """The issues as a pandas DataFrame (one row per issue)."""
        import pandas as pd

        columns = ["severity", "code", "dataset", "file", "row", "clip", "frame", "message"]
        return pd.DataFrame([{c: getattr(i, c) for c in columns} for i in self.issues], columns=columns)
