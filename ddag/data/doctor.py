"""Dataset doctor: checks a dataset root and says what is wrong and how to fix it.

`quick` checks (folders, index/split files, listed files present and non-empty, identities with
no images) run at the start of every train/eval run; `task=prepare task.mode=check` adds a
decode of every image. Counts that differ from the published dataset are warnings, since
miniature copies and subsets are legitimate.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List

from ddag.data.datasets.base import read_rgb
from ddag.errors import DatasetError

_SHOW = 10


@dataclass
class Finding:
    """One problem: how bad ("error" or "warning"), what, and the fix."""

    level: str
    problem: str
    fix: str
    items: List[str] = field(default_factory=list)

    def text(self) -> str:
        shown = "".join(f"\n      {item}" for item in self.items[:_SHOW])
        more = f"\n      ... and {len(self.items) - _SHOW} more" if len(self.items) > _SHOW else ""
        return f"  [{self.level}] {self.problem}{shown}{more}\n      fix: {self.fix}"


@dataclass
class DoctorReport:
    """Counts and findings of one dataset root."""

    dataset: str
    root: str
    counts: Dict[str, int] = field(default_factory=dict)
    findings: List[Finding] = field(default_factory=list)

    @property
    def errors(self) -> List[Finding]:
        return [f for f in self.findings if f.level == "error"]

    def add(self, level: str, problem: str, fix: str, items: Iterable = ()) -> None:
        self.findings.append(Finding(level, problem, fix, [str(i) for i in items]))

    def text(self) -> str:
        lines = [f"{self.dataset} at {self.root}"]
        lines += [f"  {name}: {value}" for name, value in self.counts.items()]
        lines += [f.text() for f in self.findings] or ["  no problems found"]
        return "\n".join(lines)

    def raise_on_errors(self) -> None:
        if self.errors:
            raise DatasetError(f"the dataset has {len(self.errors)} problem(s):\n{self.text()}")


def check_files(report: DoctorReport, paths: Iterable[Path], decode: bool) -> None:
    """Missing, empty and (with `decode`) unreadable image files, each listed with a count."""
    missing, empty, unreadable = [], [], []
    for path in paths:
        if not path.is_file():
            missing.append(path)
        elif path.stat().st_size == 0:
            empty.append(path)
        elif decode:
            try:
                read_rgb(str(path))
            except DatasetError as err:
                unreadable.append(f"{path} ({err.__cause__ or err})")
    if missing:
        report.add(
            "error",
            f"{len(missing)} listed image file(s) do not exist",
            "restore them from the original archive, or remove their lines from the index files",
            missing,
        )
    if empty:
        report.add(
            "error",
            f"{len(empty)} image file(s) are empty",
            "restore them from the original archive",
            empty,
        )
    if unreadable:
        report.add(
            "error",
            f"{len(unreadable)} image file(s) cannot be decoded (truncated or not images)",
            "replace them from the original archive",
            unreadable,
        )


def expect_folders(report: DoctorReport, root: Path, names: Iterable[str], hint: str) -> bool:
    """Error per missing folder; True when all exist."""
    absent = [name for name in names if not (root / name).is_dir()]
    if absent:
        report.add("error", f"missing folder(s): {', '.join(absent)}", hint)
    return not absent


def compare_count(report: DoctorReport, what: str, found: int, published: int) -> None:
    report.counts[what] = found
    if found != published:
        report.add(
            "warning",
            f"{what}: found {found}, the published dataset has {published}",
            "fine for a subset or a miniature copy; otherwise the copy is incomplete",
        )
