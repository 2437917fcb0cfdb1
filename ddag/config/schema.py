"""Dataclass schema of the fixed top-level keys, registered in Hydra's ConfigStore.

Component subtrees (dataset, model, loss, optimizer, schedule, logger) are typed `Any`: their
keys are checked against the `_target_` signatures by `ddag/config/validate.py`.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

from ddag.data.loader import LoaderSettings
from ddag.engine.runtime import RuntimeSettings

SCHEMA_NAME = "ddag_schema"


@dataclass
class TaskConfig:
    """What `run.py` does. Keys not used by a task are ignored by it.

    Attributes:
        name: task module under ddag/tasks (train, eval).
        epochs: training epochs.
        eval_every: evaluate on the selection split every N epochs.
        selection: which model is tested at the end: "last", "val" (best on the validation
            identities) or "test" (best on the test set, as the reference code does; flagged).
        selection_metric: metric maximised by the selection ("rank1" or "mAP").
        checkpoint: checkpoint to evaluate (task=eval).
        resume: checkpoint to continue training from, or "auto" for this run dir's last.ckpt.
        log_every: progress line every N steps.
        save_every: write last.ckpt every N epochs.
        max_steps_per_epoch: cut epochs short (smoke runs); null runs full epochs.
        mode: task=prepare: "check" (report only) or "prepare" (report, then pack SYSU arrays).
        layout: task=synthesize: "regdb" or "sysu".
        root: task=synthesize: folder to write.
        images: task=extract: folder of images (null: a dataset split).
        split: task=extract: train, val or test.
        modality: task=extract/search: visible or thermal (of the queries, for search).
        output: task=extract: file name in the run directory.
        query: task=search: folder of query images.
        gallery: task=search: folder of gallery images.
        top_k: task=search: matches kept per query.
        format: task=export: MINDIR or ONNX.
        batch_size: task=export: batch size of the exported input.
        repeats: task=bench: timed repetitions.
        warmup: task=bench: untimed calls before them.
        parts: task=bench: what to measure (conv, metrics, train, data).
        table: task=table: manifest name in experiments/ (or a path).
        runs: task=table: run or sweep directories to read.
        results_dir: task=table: where to write the table (default: the run directory).
    """

    name: str = "train"
    epochs: int = 20
    eval_every: int = 2
    selection: str = "val"
    selection_metric: str = "rank1"
    checkpoint: Optional[str] = None
    resume: Optional[str] = None
    log_every: int = 10
    save_every: int = 1
    max_steps_per_epoch: Optional[int] = None
    mode: str = "prepare"
    layout: str = "regdb"
    root: Optional[str] = None
    images: Optional[str] = None
    split: str = "test"
    modality: str = "visible"
    output: str = "features.npz"
    query: Optional[str] = None
    gallery: Optional[str] = None
    top_k: int = 10
    format: str = "MINDIR"
    batch_size: int = 1
    repeats: int = 5
    warmup: int = 2
    parts: List[str] = field(default_factory=lambda: ["conv", "metrics", "train", "data"])
    table: Optional[str] = None
    runs: List[str] = field(default_factory=list)
    results_dir: Optional[str] = None


@dataclass
class EvalConfig:
    """Evaluation options.

    Attributes:
        protocol: the evaluation protocols by name, selected from the `eval/protocol` config
            group as a list (each dataset config chooses its defaults): `eval/protocol=[sysu_all]`.
        flip: average features of each image and its mirror (tagged in results).
        rerank: k-reciprocal re-ranking of the test ranking (transductive; tagged in results).
        rerank_k1: k1 of the re-ranking (neighbourhood size).
        rerank_k2: k2 of the re-ranking (local query expansion).
        rerank_lambda: weight of the original distance in the re-ranked one.
    """

    protocol: Dict[str, Any] = field(default_factory=dict)
    flip: bool = False
    rerank: bool = False
    rerank_k1: int = 20
    rerank_k2: int = 6
    rerank_lambda: float = 0.3


@dataclass
class PathsConfig:
    """Where things go. `output_dir` is the Hydra run directory unless overridden.

    `data_root` holds SYSU-MM01/ and RegDB/ (env DDAG_DATA); `pretrained_dir` holds ImageNet
    backbone checkpoints (env DDAG_PRETRAINED).
    """

    output_dir: str = "${hydra:runtime.output_dir}"
    data_root: str = "${oc.env:DDAG_DATA,data}"
    pretrained_dir: str = "${oc.env:DDAG_PRETRAINED,pretrained}"


@dataclass
class Config:
    """Top-level configuration."""

    task: TaskConfig = field(default_factory=TaskConfig)
    name: str = "default"
    seed: int = 0
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    loader: LoaderSettings = field(default_factory=LoaderSettings)
    eval: EvalConfig = field(default_factory=EvalConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    dataset: Any = None
    model: Any = None
    loss: Any = None
    optimizer: Any = None
    schedule: Any = None
    logger: Any = None


def register_configs() -> None:
    """Put the schema into Hydra's ConfigStore under `ddag_schema` (idempotent)."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=Config)
