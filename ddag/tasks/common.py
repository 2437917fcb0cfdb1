"""Builders shared by the tasks: the only place (with run.py) that turns config into objects."""

import hashlib
import json
from pathlib import Path
from typing import List, Optional, Tuple

import yaml
from omegaconf import DictConfig, OmegaConf

from ddag.api import ReIDModel
from ddag.checkpoints.meta import CheckpointMeta
from ddag.checkpoints.network import load_network
from ddag.config.instantiate import build
from ddag.data.loader import LoaderSettings, train_pipeline
from ddag.data.sampler import IdentitySampler
from ddag.engine.runtime import RuntimeSettings, setup_runtime
from ddag.errors import ConfigError, DatasetError
from ddag.evaluation.evaluator import evaluate
from ddag.evaluation.features import FeatureExtractor
from ddag.evaluation.plots import cmc_image, save_cmc_image
from ddag.evaluation.results import markdown_table, write_records
from ddag.models.architecture import build_network as build_model_network
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def to_dict(node) -> dict:
    """Resolved plain-Python copy of a config node."""
    return (
        OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    )


def config_hash(cfg: DictConfig) -> str:
    """Short stable hash of the resolved config (excluding paths), recorded with results."""
    data = {k: v for k, v in to_dict(cfg).items() if k not in ("paths", "hydra")}
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _hydra_runtime():
    """Hydra's runtime config of this job, or None outside a Hydra run (tests, the API)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def group_choices() -> dict:
    """{config group: chosen option} of this run (Hydra's own groups and schemas left out)."""
    hydra = _hydra_runtime()
    if hydra is None:
        return {}
    choices = hydra.runtime.choices
    return {
        group: option
        for group, option in choices.items()
        if not group.startswith("hydra") and option is not None and "_schema" not in str(option)
    }


def _split_line(name: str, split) -> str:
    ids = set(split.visible.ids.tolist()) | set(split.thermal.ids.tolist())
    return (
        f"{name} {len(ids)} ids, {len(split.visible)} visible + {len(split.thermal)} thermal images"
    )


def log_start_banner(cfg: DictConfig, dataset, out_dir: Path) -> None:
    """What the run is, before it starts: folder, config choices, data and device."""
    choices = " ".join(f"{g}={o}" for g, o in sorted(group_choices().items()))
    splits = [("train", dataset.train_split()), ("val", dataset.val_split())]
    splits.append(("test", dataset.test_split()))
    data = "; ".join(_split_line(name, split) for name, split in splits if split is not None)
    runtime = cfg.runtime
    log.info(
        "run %s in %s\n  config: %s\n  data: %s: %s\n  device: %s, %s mode%s, seed %s",
        cfg.name,
        out_dir,
        choices or "(composed without Hydra)",
        dataset.name,
        data,
        runtime.device_target,
        runtime.mode,
        ", compiled train step" if runtime.jit_step else ", eager train step",
        cfg.seed,
    )


def record_run_config(cfg: DictConfig) -> None:
    """Rewrite the run folder's `.hydra/config.yaml` with `cfg` (a resumed run's own settings:
    Hydra wrote the composed defaults of the bare resume command there)."""
    hydra = _hydra_runtime()
    if hydra is None or not hydra.output_subdir:
        return
    path = Path(hydra.runtime.output_dir) / str(hydra.output_subdir) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg))


def run_identity(cfg: DictConfig, dataset) -> dict:
    """What a results record says about its run: preset name, seed, RegDB trial, config hash."""
    return {
        "name": str(cfg.name),
        "seed": int(cfg.seed),
        "trial": cfg.dataset.get("trial"),
        "dataset": dataset.name,
        "config_hash": config_hash(cfg),
    }


def checkpoint_identity(cfg: DictConfig, dataset, path, meta: CheckpointMeta) -> dict:
    """A results record's identity for a checkpoint: the run that trained it, so that
    `task=table` matches evaluations of saved checkpoints like the training runs' own records.

    Name, seed, RegDB trial and config hash come from the checkpoint (plain values only; the
    current config fills in what an older or foreign checkpoint does not say).
    """
    state = meta.state or {}
    current = run_identity(cfg, dataset)

    def pick(value, kind, fallback):
        return value if isinstance(value, kind) and not isinstance(value, bool) else fallback

    return {
        "name": pick(meta.stored_config("name"), str, current["name"]),
        "seed": pick(meta.stored_config("seed"), int, current["seed"]),
        "trial": pick(meta.stored_config("dataset", "trial"), int, current["trial"]),
        "dataset": dataset.name,
        "config_hash": meta.config_hash or current["config_hash"],
        "checkpoint": str(path),
        "epoch": pick(state.get("epoch"), int, None),
    }


def setup(cfg: DictConfig):
    """Device, mode, seeds (and the msrun job) from `cfg.runtime` and `cfg.seed`."""
    return setup_runtime(RuntimeSettings(**to_dict(cfg.runtime)), int(cfg.seed))


def loader_settings(cfg: DictConfig) -> LoaderSettings:
    return LoaderSettings(**to_dict(cfg.loader))


def output_dir(cfg: DictConfig) -> Path:
    path = Path(str(cfg.paths.output_dir))
    if path.exists() and not path.is_dir():
        raise ConfigError(f"paths.output_dir={path} is a file; choose a folder for the outputs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def training_data(cfg: DictConfig, dataset, num_shards: int = 1, shard_id: int = 0):
    """(sampler, pipeline) of the dataset's training split with the configured P x K sampler."""
    train = dataset.train_split()
    settings = loader_settings(cfg)
    sampler = IdentitySampler(
        train.visible.ids,
        train.thermal.ids,
        settings.num_ids,
        settings.num_instances,
        seed=int(cfg.seed),
        num_shards=num_shards,
        shard_id=shard_id,
    )
    return sampler, train_pipeline(train.visible, train.thermal, sampler, settings)


def build_dataset(cfg: DictConfig, check: bool = True):
    """The dataset of `cfg.dataset`; with `check`, its quick doctor report must have no errors."""
    dataset = build(cfg.dataset)
    report = dataset.check(decode=False) if check else None
    if report is not None:
        report.raise_on_errors()
        if report.findings:
            log.info(
                "dataset check: %d warning(s); run task=prepare for the full report",
                len(report.findings),
            )
    return dataset


def build_network(cfg: DictConfig, num_classes: int):
    """The DDAG network of `cfg.model`."""
    return build_model_network(to_dict(cfg.model), num_classes)


def command_line_keys() -> List[str]:
    """Keys and groups the user set on the command line (`loader.height`, `model/backbone`)."""
    hydra = _hydra_runtime()
    if hydra is None:
        return []
    return [o.lstrip("+~").split("=", 1)[0] for o in hydra.overrides.task]


def command_line_values() -> dict:
    """{key: value} of the `key=value` command-line overrides (a sweep job's hyper-parameters);
    numbers and booleans as such, anything else as its text."""
    hydra = _hydra_runtime()
    if hydra is None:
        return {}
    values = {}
    for line in hydra.overrides.task:
        key, sep, text = line.lstrip("+~").partition("=")
        if not sep or key.startswith("hydra"):
            continue
        value = yaml.safe_load(text) if text else text
        values[key] = value if isinstance(value, (bool, int, float, str)) else text
    return values


def network_from_checkpoint(cfg: DictConfig):
    """(network, meta, cfg) of `task.checkpoint`; the returned cfg is the one to infer with.

    The checkpoint's own model and input size are the defaults: the config's image size is
    replaced by the one the checkpoint was trained with, unless the command line sets it (then
    the conflict is reported, since features then differ from training's). `model` settings on
    the command line cannot change a checkpoint that stores its model: they are reported.
    """
    loaded = load_network(cfg.task.checkpoint, to_dict(cfg.model))
    network, meta = loaded.network, loaded.meta
    log.info("loaded %s: %s", cfg.task.checkpoint, loaded.report.summary())
    keys = command_line_keys()
    if loaded.holds_model:
        ignored = [k for k in keys if k == "model" or k.startswith(("model.", "model/"))]
        if ignored:
            log.warning(
                "%s holds its own model; ignored from the command line: %s",
                cfg.task.checkpoint,
                ", ".join(ignored),
            )
    size = {"height": meta.input.height, "width": meta.input.width} if meta.input else {}
    current = {k: int(cfg.loader[k]) for k in size}
    if size and current != size:
        trained = f"{size.get('height', '?')}x{size.get('width', '?')}"
        forced = [k for k in keys if k in ("loader", "loader.height", "loader.width")]
        if forced:
            log.warning(
                "%s was trained on %s images; %s on the command line makes it see %sx%s, so "
                "its features differ from those of training",
                cfg.task.checkpoint,
                trained,
                ", ".join(forced),
                current.get("height", "?"),
                current.get("width", "?"),
            )
        else:
            log.info("input size %s, as the checkpoint was trained", trained)
            cfg = OmegaConf.merge(cfg, {"loader": size})
    return network, meta, cfg


def build_loss_terms(cfg: DictConfig) -> dict:
    """The named loss terms of `cfg.loss`; a term set to null (`loss.graph=null`) is left out."""
    return {name: build(node) for name, node in to_dict(cfg.loss).items() if node is not None}


def build_protocols(cfg: DictConfig) -> List:
    """The protocols selected in the eval/protocol config group, in selection order.

    A protocol's `split_dir: null` (the official SYSU-MM01 splits) means `<dataset.root>/exp`.
    """
    root = dataset_root(cfg)
    nodes = to_dict(cfg.eval).get("protocol") or {}
    if not nodes:
        raise ConfigError(
            "no evaluation protocol is selected; choose some, e.g. eval/protocol=[regdb_v2t]"
        )
    protocols = []
    for name, node in nodes.items():
        if "split_dir" in node and not node["split_dir"]:
            if not root:
                raise ConfigError(
                    f"eval.protocol.{name}.split_dir is not set and there is no dataset root to "
                    f"take <root>/exp from; add eval.protocol.{name}.split_dir=FOLDER (the "
                    "folder holding the authors' rand_perm_cam.mat)"
                )
            node = {**node, "split_dir": str(Path(root) / "exp")}
        protocols.append(build(node))
    return protocols


def dataset_root(cfg: DictConfig) -> Optional[str]:
    """`dataset.root` of datasets read from disk; None for the synthetic one."""
    root = to_dict(cfg.dataset).get("root") if cfg.get("dataset") else None
    return str(root) if root else None


def check_protocols(protocols: List, split) -> None:
    """Each protocol's `check` of the test split, at start-up: DatasetError listing problems."""
    problems = [problem for protocol in protocols for problem in protocol.check(split)]
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DatasetError(
            f"the test split does not fit the selected protocols ({len(problems)} problem(s)):"
            f"\n  {shown}{more}\nRestore the listed folders from the original archive, or fix "
            "the split files; task=prepare task.mode=check lists every problem"
        )


def rerank_settings(cfg: DictConfig):
    """Keyword arguments of `re_ranking` when `eval.rerank` is on, else None."""
    if not cfg.eval.rerank:
        return None
    return {
        "k1": int(cfg.eval.rerank_k1),
        "k2": int(cfg.eval.rerank_k2),
        "lambda_value": float(cfg.eval.rerank_lambda),
    }


def build_logger(cfg: DictConfig):
    node = cfg.get("logger")
    if not node or "_target_" not in node:
        return None
    return build(node)


def inference_model(cfg: DictConfig) -> Tuple[ReIDModel, DictConfig]:
    """(ReIDModel of `task.checkpoint`, the config to infer with: the checkpoint's input size)."""
    network, _, cfg = network_from_checkpoint(cfg)
    settings = loader_settings(cfg)
    model = ReIDModel(
        network, settings.height, settings.width, settings.test_batch_size, bool(cfg.eval.flip)
    )
    return model, cfg


def test_and_report(
    extractor: FeatureExtractor,
    dataset,
    protocols: list,
    cfg: DictConfig,
    identity: dict,
    flags: dict,
    out_dir: Path,
    tensorboard=None,
    step: int = 0,
) -> dict:
    """Evaluate on the test split, write results.json, log the table; returns the means."""
    records = evaluate(
        extractor,
        dataset.test_split(),
        protocols,
        flags=flags,
        identity=identity,
        rerank=rerank_settings(cfg),
        distance=cfg.eval.distance,
    )
    return report_records(records, out_dir, dataset.name, tensorboard, step)


def report_records(records: list, out_dir: Path, what: str, tensorboard=None, step: int = 0):
    """Write results.json and cmc.png, log the table (and to TensorBoard); returns the means."""
    path = write_records(records, out_dir / "results.json")
    save_cmc_image(records, out_dir / "cmc.png")
    table = markdown_table(records)
    log.info("test results (%s), written to %s\n%s", what, path, table)
    summary = {f"{r.protocol}/{r.feature}/{m}": v for r in records for m, v in r.mean.items()}
    if tensorboard is not None:
        tensorboard.log_metrics("test", summary, step)
        tensorboard.log_image("test/cmc", cmc_image(records), step)
    return summary
