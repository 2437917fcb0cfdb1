"""Dataclass schema of the fixed top-level keys, registered in Hydra's ConfigStore.

Component subtrees (dataset, model, loss, optimizer, schedule, logger) are typed `Any`: their
keys are checked against the `_target_` signatures by `ddag/config/validate.py`.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from ddag.checkpoints.checkpointer import InitSettings
from ddag.checkpoints.conversion import CONVERT_KINDS
from ddag.data.datasets.base import MODALITIES, SPLITS
from ddag.data.loader import LoaderSettings
from ddag.data.synthetic_disk import LAYOUTS
from ddag.data.sysu_splits import SPLITS_URL
from ddag.engine.runtime import RuntimeSettings
from ddag.evaluation.metrics import DISTANCES
from ddag.evaluation.results import METRICS
from ddag.models.ddag import EXPORT_FORMATS
from ddag.utils.fields import bounded, choice

SCHEMA_NAME = "ddag_schema"
SELECTIONS = ("last", "val", "test")
PREPARE_MODES = ("prepare", "check", "fetch_splits")


@dataclass
class TrainTask:
    """task=train: train, select a model, evaluate it on the test protocols.

    Attributes:
        epochs: training epochs.
        eval_every: evaluate on the selection split every N epochs.
        selection: which model is tested at the end: "last", "val" (best on the validation
            identities) or "test" (best on the test set, as the reference code does; flagged).
        selection_metric: metric maximised by the selection.
        resume: checkpoint to continue training from, or "auto" for this run dir's last.ckpt;
            the run continues with the settings stored in that checkpoint.
        resume_changes: accept command-line settings that differ from the resumed run's own
            (otherwise they are refused, listed).
        log_every: progress line every N steps.
        save_every: write last.ckpt every N epochs.
        max_steps_per_epoch: cut epochs short (smoke runs); null runs full epochs.
    """

    name: str = "train"
    epochs: int = bounded(20, 1, 100_000)
    eval_every: int = bounded(2, 1)
    selection: str = choice("val", SELECTIONS)
    selection_metric: str = choice("rank1", METRICS)
    resume: Optional[str] = None
    resume_changes: bool = False
    log_every: int = bounded(5, 1)
    save_every: int = bounded(1, 1)
    max_steps_per_epoch: Optional[int] = bounded(None, 1)


@dataclass
class EvalTask:
    """task=eval: evaluate `checkpoint` on the configured dataset's test protocols."""

    name: str = "eval"
    checkpoint: str = MISSING


@dataclass
class ExtractTask:
    """task=extract: FC and FC_att features of a folder or a dataset split, to .npz.

    Attributes:
        checkpoint: the checkpoint to use.
        images: a folder of images; null uses the dataset's `split`.
        split: train, val or test.
        modality: visible or thermal: which stem reads the images. Required for a folder; for
            a split, null writes both modalities into one file (a modality per row).
        output: file name in the run directory.
    """

    name: str = "extract"
    checkpoint: str = MISSING
    images: Optional[str] = None
    split: str = choice("test", SPLITS)
    modality: Optional[str] = choice(None, MODALITIES)
    output: str = "features.npz"


@dataclass
class SearchTask:
    """task=search: rank a gallery folder for every image of a query folder.

    Attributes:
        checkpoint: the checkpoint to use.
        query: folder of query images (of `modality`).
        gallery: folder of gallery images (the other modality).
        modality: modality of the queries.
        top_k: matches kept per query.
        num_queries: queries drawn in ranking.png (numeric identity order).
    """

    name: str = "search"
    checkpoint: str = MISSING
    query: str = MISSING
    gallery: str = MISSING
    modality: str = choice("thermal", MODALITIES)
    top_k: int = bounded(10, 1, 10_000)
    num_queries: int = bounded(8, 1, 1_000)


@dataclass
class ExportTask:
    """task=export: MINDIR or ONNX inference graph with a fixed input batch size."""

    name: str = "export"
    checkpoint: str = MISSING
    format: str = choice("MINDIR", EXPORT_FORMATS)
    batch_size: int = bounded(1, 1, 4096)


@dataclass
class TableTask:
    """task=table: a paper table from finished runs.

    Attributes:
        table: manifest name in experiments/ (or a path to one).
        runs: run or sweep directories to read; none: the paper numbers, every run missing.
        results_dir: where to write the table (null: the run directory).
        allow_modified: count runs whose settings differ from their preset (the row is
            marked); by default they are left out and listed with the keys that differ.
    """

    name: str = "table"
    table: str = MISSING
    runs: List[str] = field(default_factory=list)
    results_dir: Optional[str] = None
    allow_modified: bool = False


@dataclass
class BenchTask:
    """task=bench: timed repetitions after warm-up of the listed parts.

    Attributes:
        repeats: timed repetitions (steps) of each measurement.
        warmup: untimed repetitions before them.
        parts: any of conv, metrics, train, data, profile (MindSpore's per-op profile of the
            DDAG step), infer (inference images/s of MindSpore, ONNX Runtime and, with
            `reference`, the PyTorch reference in eager mode, alternated).
        reference: a checkout of mangye16/DDAG: also time the PyTorch reference step.
        reference_python: the Python (with torch) that runs it; null: this one.
        rounds: alternating rounds of DDAG and reference timing.
    """

    name: str = "bench"
    repeats: int = bounded(5, 1, 10_000)
    warmup: int = bounded(2, 0, 10_000)
    parts: List[str] = field(default_factory=lambda: ["conv", "metrics", "train", "data"])
    reference: Optional[str] = None
    reference_python: Optional[str] = None
    rounds: int = bounded(3, 1, 1000)


@dataclass
class PrepareTask:
    """task=prepare: dataset doctor ("check"), SYSU-MM01 packing ("prepare"), or the download
    of the SYSU-MM01 authors' split files ("fetch_splits").

    Attributes:
        mode: check, prepare or fetch_splits.
        split_dir: where fetch_splits puts rand_perm_cam.mat and test_id.mat, and where the
            doctor looks for them; null: <dataset.root>/exp.
        splits_url: the folder URL the split files are downloaded from (sha256-checked).
    """

    name: str = "prepare"
    mode: str = choice("prepare", PREPARE_MODES)
    split_dir: Optional[str] = None
    splits_url: str = SPLITS_URL


@dataclass
class SynthesizeTask:
    """task=synthesize: write the synthetic dataset in the RegDB, SYSU-MM01 or LLCM layout to
    `root`."""

    name: str = "synthesize"
    layout: str = choice("regdb", LAYOUTS)
    root: str = MISSING


@dataclass
class ConvertTask:
    """task=convert: a weight file as a MindSpore checkpoint with a load report.

    Attributes:
        source: a .pth/.pt/.bin PyTorch state dict, a .safetensors or .ckpt file, a URL, or a
            short name (resnet50_tv, ...): an ImageNet ResNet or a reference DDAG checkpoint.
        sha256: expected sha256 (or its first >= 8 hex digits) of a URL's file.
        kind: "auto" (from the names), "backbone" (ImageNet ResNet) or "ddag" (reference DDAG).
        output: file name in the run directory.
    """

    name: str = "convert"
    source: str = MISSING
    sha256: Optional[str] = None
    kind: str = choice("auto", CONVERT_KINDS)
    output: str = "converted.ckpt"


@dataclass
class ScoreTask:
    """task=score: score precomputed features of any model on the selected protocols.

    Attributes:
        features: a prefix P of the SYSU-MM01 authors' layout (P_cam1.mat ... P_cam6.mat,
            cell arrays `feature`), a .npz written by task=extract, or a list of .npz files
            (one per modality).
    """

    name: str = "score"
    features: Any = MISSING


VISUAL_KINDS = ("tsne", "distances", "attention", "actmap")


@dataclass
class VisualizeTask:
    """task=visualize: pictures of what a checkpoint learned, on a dataset split, or of
    features another run wrote.

    Attributes:
        checkpoint: the checkpoint to use (every kind).
        features: instead of a checkpoint and a split, the .npz files task=extract wrote (a
            list, one per modality, or one file) or the SYSU-MM01 authors' .mat prefix, as
            task=score reads them: tsne and distances only.
        split: train, val or test.
        kinds: any of tsne (FC/FC_att features by identity and modality), distances (pair
            distance distributions), attention (IWPA part weights, CGSA attention in a batch),
            actmap (activation maps of queries and their top matches).
        feature: FC, FC_att or feature (an .npz's single `features` array), for tsne,
            distances and the matches of actmap; features holding one array draw that one.
        max_ids: identities sampled (seeded) for tsne and distances.
        batch_ids: identities of the batch whose attention is drawn (2 images per modality).
        num_queries: thermal queries of the activation maps.
        top_k: visible matches shown per query.
    """

    name: str = "visualize"
    checkpoint: Optional[str] = None
    features: Any = None
    split: str = choice("test", SPLITS)
    kinds: List[str] = field(default_factory=lambda: list(VISUAL_KINDS))
    feature: str = choice("FC_att", ("FC", "FC_att", "feature"))
    max_ids: int = bounded(20, 2, 1000)
    batch_ids: int = bounded(4, 1, 32)
    num_queries: int = bounded(3, 1, 32)
    top_k: int = bounded(4, 1, 20)


# Each task's schema, stored in the ConfigStore as task/<name>_schema; conf/task/<name>.yaml
# starts from it, so every default and type is stated here once.
TASK_SCHEMAS = {
    "train": TrainTask,
    "eval": EvalTask,
    "extract": ExtractTask,
    "search": SearchTask,
    "export": ExportTask,
    "table": TableTask,
    "bench": BenchTask,
    "prepare": PrepareTask,
    "synthesize": SynthesizeTask,
    "convert": ConvertTask,
    "score": ScoreTask,
    "visualize": VisualizeTask,
}


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
        distance: how every task that ranks measures distance: "cosine" (the reference code's,
            on L2-normalised features), "euclidean" (the SYSU-MM01 authors' MATLAB
            evaluation, on the raw features) or "inner" (DEEN's test.py: the negative inner
            product, flipped-image features summed without normalising again).
        backend: what computes test features in eval, extract, search and visualize:
            "mindspore", or "onnxruntime" (the network's exported graph in ONNX Runtime, with
            runtime.num_threads intra-op threads; the extra `.[onnx]`). Recorded in results.
    """

    protocol: Dict[str, Any] = field(default_factory=dict)
    distance: str = choice("cosine", DISTANCES)
    backend: str = choice("mindspore", ("mindspore", "onnxruntime"))
    flip: bool = False
    rerank: bool = False
    rerank_k1: int = bounded(20, 1, 1000)
    rerank_k2: int = bounded(6, 1, 1000)
    rerank_lambda: float = bounded(0.3, 0, 1)


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

    task: Any = None  # one of TASK_SCHEMAS, chosen by the task group
    name: str = "default"
    seed: int = bounded(0, 0, 2**32 - 1)
    # A run folder that holds a finished run is refused unless the run resumes it or this says
    # to replace it.
    overwrite: bool = False
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    loader: LoaderSettings = field(default_factory=LoaderSettings)
    eval: EvalConfig = field(default_factory=EvalConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    # Initial weights of a new network (the `init` group), loaded by the task after building it.
    init: InitSettings = field(default_factory=InitSettings)
    dataset: Any = None
    model: Any = None
    loss: Any = None
    optimizer: Any = None
    schedule: Any = None
    logger: Any = None


def register_configs() -> None:
    """Put the schemas into Hydra's ConfigStore: `ddag_schema`, `task/<name>_schema`; register
    ddag's resolvers."""
    from ddag.config.resolvers import register_resolvers

    register_resolvers()
    store = ConfigStore.instance()
    store.store(name=SCHEMA_NAME, node=Config)
    for name, schema in TASK_SCHEMAS.items():
        store.store(group="task", name=f"{name}_schema", node=schema)
