"""Paper tables from finished runs: group results records by preset, average, compare.

A table manifest (experiments/<table>.yaml) lists rows: a preset, the protocol and feature to
report, the seeds and RegDB trials that make up the row, and the paper's numbers with their
source. Runs are found through their results.json; nothing is retrained.
"""

import csv
import io
import itertools
import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ddag.errors import FAILED_MARKER
from ddag.evaluation.results import read_records
from ddag.reporting.sweep_summary import sample_std
from ddag.utils.logging import get_logger
from ddag.utils.paths import file_in

log = get_logger(__name__)


def collect_runs(paths: List[str]) -> Dict[str, list]:
    """Results records under `paths` (run or sweep directories) and failed job directories."""
    found = {"records": [], "failed": []}
    for root in map(Path, paths):
        if not root.exists():
            log.warning("no such run directory: %s", root)
            continue
        for marker in sorted(root.rglob(FAILED_MARKER)):
            found["failed"].append(str(marker.parent))
        for path in sorted(root.rglob("results.json")):
            found["records"] += [(record, str(path.parent)) for record in read_records(path)]
    return found


def _cell_key(seed, trial):
    return f"seed {seed}" + (f", trial {trial}" if trial is not None else "")


def build_table(
    manifest: dict, records: list, modified_by=None, allow_modified: bool = False
) -> dict:
    """Rows with our mean/std over the row's runs, the paper's numbers and the differences.

    `modified_by(preset, seed, trial, run_dir)` lists how a run's settings differ from its
    preset's; such a run is left out of its row (listed under `modified`) unless
    `allow_modified` (then the row is marked `includes_modified`)."""
    metrics = list(manifest.get("metrics", ["rank1", "mAP", "mINP"]))
    rows = []
    for spec in manifest["rows"]:
        feature = spec.get("feature", manifest.get("feature", "FC_att"))
        trials = spec.get("trials") or [None]
        wanted = {(int(s), t): None for s, t in itertools.product(spec.get("seeds", [0]), trials)}
        modified, included_modified = {}, False
        for record, run_dir in records:
            ident = record.identity
            key = (int(ident.get("seed", 0)), ident.get("trial") if trials != [None] else None)
            if (
                ident.get("name") == spec["preset"]
                and record.protocol == spec["protocol"]
                and record.feature == feature
                and key in wanted
            ):
                changes = modified_by(spec["preset"], *key, run_dir) if modified_by else []
                if changes:
                    modified[run_dir] = changes
                    if not allow_modified:
                        continue
                    included_modified = True
                wanted[key] = record.mean
        done = [m for m in wanted.values() if m is not None]
        ours = {m: [100 * d[m] for d in done if m in d] for m in metrics}
        paper: Optional[dict] = spec.get("paper")
        row = {
            "preset": spec["preset"],
            "protocol": spec["protocol"],
            "feature": feature,
            "runs": len(done),
            "expected": len(wanted),
            "missing": [_cell_key(s, t) for (s, t), m in wanted.items() if m is None],
            "mean": {m: float(np.mean(v)) for m, v in ours.items() if v},
            "std": {m: sample_std(v) for m, v in ours.items() if v},
            "paper": paper,
            "source": spec.get("source"),
            "modified": [{"run": run, "differences": d} for run, d in modified.items()],
            "includes_modified": included_modified,
        }
        row["diff"] = {
            m: row["mean"][m] - paper[m]
            for m in metrics
            if paper and m in paper and m in row["mean"]
        }
        rows.append(row)
    return {
        "name": manifest["name"],
        "title": manifest.get("title", manifest["name"]),
        "metrics": metrics,
        "rows": rows,
    }


def _cell(row, metric) -> str:
    if metric not in row["mean"]:
        paper = row["paper"] or {}
        return f"missing (paper {paper[metric]:.2f})" if metric in paper else "missing"
    text = f"{row['mean'][metric]:.2f}"
    if row["runs"] > 1:
        text += f" ± {row['std'][metric]:.2f}"
    if row["paper"] and metric in row["paper"]:
        text += f" ({row['paper'][metric]:.2f}, {row['diff'][metric]:+.2f})"
    return text


def table_markdown(table: dict) -> str:
    """Ours mean ± std over runs, then (paper, ours - paper) where the paper reports it."""
    metrics = table["metrics"]
    lines = [
        f"### {table['title']}",
        "",
        "Ours: mean ± sample std (ddof=1) over runs, in %; in brackets: the paper's value and "
        "our difference.",
        "",
        "| preset | protocol | feature | runs | " + " | ".join(metrics) + " |",
        "|" + "---|" * (4 + len(metrics)),
    ]
    for row in table["rows"]:
        cells = " | ".join(_cell(row, m) for m in metrics)
        preset = row["preset"] + (" (modified runs)" if row.get("includes_modified") else "")
        lines.append(
            f"| {preset} | {row['protocol']} | {row['feature']} | "
            f"{row['runs']}/{row['expected']} | {cells} |"
        )
    missing = [(r["preset"], r["missing"]) for r in table["rows"] if r["missing"]]
    if missing:
        lines += ["", "Missing runs:"] + [f"- {p}: {', '.join(m)}" for p, m in missing]
    changed = [(r, m) for r in table["rows"] for m in r.get("modified", [])]
    if changed:
        left_out = not any(r.get("includes_modified") for r, _ in changed)
        lines += [
            "",
            "Runs whose settings differ from their preset"
            + (" (left out; task.allow_modified=true includes them):" if left_out else ":"),
        ]
        for row, item in changed:
            extra = len(item["differences"]) - 6
            shown = "; ".join(item["differences"][:6]) + (
                f"; ... {extra} more" if extra > 0 else ""
            )
            lines.append(f"- {row['preset']}, {item['run']}: {shown}")
    sources = sorted({r["source"] for r in table["rows"] if r["source"]})
    if sources:
        lines += ["", "Paper numbers: " + "; ".join(sources) + "."]
    if table.get("failed_jobs"):
        lines += ["", "Failed jobs (see their logs): " + ", ".join(table["failed_jobs"])]
    return "\n".join(lines) + "\n"


def table_csv(table: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    metrics = table["metrics"]
    writer.writerow(
        ["preset", "protocol", "feature", "runs", "expected"]
        + [f"{m}_{k}" for m in metrics for k in ("mean", "std", "paper", "diff")]
    )
    for row in table["rows"]:
        values = []
        for m in metrics:
            values += [
                row["mean"].get(m, ""),
                row["std"].get(m, ""),
                (row["paper"] or {}).get(m, ""),
                row["diff"].get(m, ""),
            ]
        writer.writerow(
            [row["preset"], row["protocol"], row["feature"], row["runs"], row["expected"]] + values
        )
    return out.getvalue()


def write_table(table: dict, folder) -> List[Path]:
    """<folder>/<name>.md, .csv and .json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {
        ".md": table_markdown(table),
        ".csv": table_csv(table),
        ".json": json.dumps(table, indent=2),
    }
    paths = []
    for suffix, text in outputs.items():
        path = file_in(folder, f"{table['name']}{suffix}", "the table manifest's name")
        path.write_text(text)
        paths.append(path)
    return paths
