"""The end of a multirun: mean ± std over the seeds (and RegDB trials) of each group of jobs.

Jobs that differ only in `seed` and `dataset.trial` are repetitions of one setting; each group
gets, per protocol and feature, the mean and standard deviation (over its jobs, ddof=1) of
every metric, written as `summary.json` and `summary.md` in the sweep folder.
"""

import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ddag.evaluation.results import METRICS

REPEAT_KEYS = ("seed", "dataset.trial")
SUMMARY_FILES = ("summary.json", "summary.md")


def setting_of(overrides: Sequence[str]) -> str:
    """The job's setting: its command-line overrides without the repetition keys."""
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] not in REPEAT_KEYS]
    return " ".join(sorted(kept)) or "(defaults)"


def sample_std(values) -> float:
    """The sample standard deviation (ddof=1) of repeated runs, 0 for a single run: the one
    convention of the sweep summary and `task=table`."""
    values = np.asarray(values, np.float64)
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarize(jobs: List[Tuple[str, str, list]]) -> List[dict]:
    """Groups of `(job folder, setting, result records)`: per (protocol, feature) the mean and
    std over the group's jobs of every metric (fractions), in first-seen order."""
    groups: Dict[str, Dict[Tuple[str, str], List[dict]]] = {}
    folders: Dict[str, List[str]] = {}
    for folder, setting, records in jobs:
        folders.setdefault(setting, []).append(folder)
        rows = groups.setdefault(setting, {})
        for record in records:
            rows.setdefault((record["protocol"], record["feature"]), []).append(record["mean"])
    summary = []
    for setting, rows in groups.items():
        table = []
        for (protocol, feature), means in rows.items():
            values = {m: np.array([float(mean[m]) for mean in means]) for m in METRICS}
            table.append(
                {
                    "protocol": protocol,
                    "feature": feature,
                    "runs": len(means),
                    "mean": {m: float(v.mean()) for m, v in values.items()},
                    "std": {m: sample_std(v) for m, v in values.items()},
                }
            )
        summary.append({"setting": setting, "jobs": folders[setting], "rows": table})
    return summary


def summary_markdown(summary: List[dict], failed: Sequence[str] = ()) -> str:
    """One table per setting: mean ± sample std over its runs, in percent; then the jobs that
    failed."""
    blocks = ["Mean ± sample std (ddof=1) over the runs of each setting, in %."]
    for group in summary:
        lines = [
            f"### {group['setting']} ({len(group['jobs'])} job(s))",
            "",
            "| protocol | feature | runs | " + " | ".join(METRICS) + " |",
            "|" + "---|" * (3 + len(METRICS)),
        ]
        for row in group["rows"]:
            cells = [f"{100 * row['mean'][m]:.2f} ± {100 * row['std'][m]:.2f}" for m in METRICS]
            lines.append(
                f"| {row['protocol']} | {row['feature']} | {row['runs']} | "
                + " | ".join(cells)
                + " |"
            )
        blocks.append("\n".join(lines))
    if failed:
        blocks.append(
            f"### Failed jobs ({len(failed)}), not in the tables above\n\n"
            + "\n".join(f"- {line}" for line in failed)
        )
    return "\n\n".join(blocks) + "\n"


def write_summary(summary: List[dict], folder, failed: Sequence[str] = ()) -> List[Path]:
    """summary.json ({"groups": [...], "failed": [...], "std": "sample, ddof=1"}) and
    summary.md in `folder`; `failed` lists the failed jobs as "<folder>: <error>" lines."""
    folder = Path(folder)
    json_path, md_path = (folder / name for name in SUMMARY_FILES)
    document = {"std": "sample, ddof=1", "groups": summary, "failed": list(failed)}
    json_path.write_text(json.dumps(document, indent=2))
    md_path.write_text(summary_markdown(summary, failed))
    return [json_path, md_path]
