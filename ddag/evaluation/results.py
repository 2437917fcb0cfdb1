"""ResultRecord: what an evaluation measured and how, as JSON; shared with table building."""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List

import numpy as np

METRICS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")


@dataclass
class ResultRecord:
    """Metrics of one protocol and one feature type over its trials (fractions in [0, 1]).

    Attributes:
        protocol: protocol name, e.g. "v2t" or "sysu_all".
        fingerprint: the protocol's settings (dataset, mode, shots, trials, direction...).
        feature: "FC" (BN feature) or "FC_att" (part-attention feature).
        flags: evaluation options that change the numbers (flip, rerank, selection policy).
        identity: what was evaluated (checkpoint path/epoch, config hash, dataset).
        trials: one metrics dict per trial.
        cmc: mean CMC curve over trials.
    """

    protocol: str
    fingerprint: Dict
    feature: str
    flags: Dict
    identity: Dict
    trials: List[Dict] = field(default_factory=list)
    cmc: List[float] = field(default_factory=list)

    @property
    def mean(self) -> Dict[str, float]:
        return {
            m: float(np.mean([t[m] for t in self.trials])) for m in METRICS if m in self.trials[0]
        }

    @property
    def std(self) -> Dict[str, float]:
        return {
            m: float(np.std([t[m] for t in self.trials])) for m in METRICS if m in self.trials[0]
        }

    def to_dict(self) -> Dict:
        out = asdict(self)
        out.update(mean=self.mean, std=self.std)
        return out


def write_records(records: List[ResultRecord], path) -> Path:
    """Write records as one JSON file (a list of dicts)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.to_dict() for r in records], indent=2))
    return path


def read_records(path) -> List[ResultRecord]:
    """Read records written by `write_records`."""
    fields = ResultRecord.__dataclass_fields__
    return [
        ResultRecord(**{k: v for k, v in d.items() if k in fields})
        for d in json.loads(Path(path).read_text())
    ]


def record_means(records: List[ResultRecord]) -> Dict[str, float]:
    """{"<protocol>/<feature>/<metric>": mean over trials} of records: what tasks return and
    TensorBoard shows."""
    return {f"{r.protocol}/{r.feature}/{m}": v for r in records for m, v in r.mean.items()}


def markdown_table(records: List[ResultRecord]) -> str:
    """One row per (protocol, feature): mean (± std over trials when more than one), in percent."""
    header = "| protocol | feature | trials | " + " | ".join(METRICS) + " |"
    lines = [header, "|" + "---|" * (3 + len(METRICS))]
    for r in records:
        mean, std = r.mean, r.std
        cells = [
            f"{100 * mean[m]:.2f}" + (f" ± {100 * std[m]:.2f}" if len(r.trials) > 1 else "")
            for m in METRICS
        ]
        lines.append(
            f"| {r.protocol} | {r.feature} | {len(r.trials)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)
