"""Reporting steps: the start banner, the identity of a results record, the test report."""

from pathlib import Path

import numpy as np
from PIL import Image

from ddag.api import Ranking
from ddag.checkpoints.meta import CheckpointMeta
from ddag.config.context import RunContext
from ddag.config.run_config import config_hash
from ddag.config.schema import Config
from ddag.data.datasets.base import ArrayImageSet
from ddag.evaluation.evaluator import evaluate_features
from ddag.evaluation.features import FeatureExtractor
from ddag.evaluation.metrics import known_average_precision, nearest, pairwise_distance
from ddag.evaluation.results import markdown_table, record_means, write_records
from ddag.reporting.plots import cmc_image, ranking_image, save_cmc_image, shown_queries
from ddag.reporting.visual_stats import sample_identities
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def _split_line(name: str, split) -> str:
    ids = set(split.visible.ids.tolist()) | set(split.thermal.ids.tolist())
    return (
        f"{name} {len(ids)} ids, {len(split.visible)} visible + {len(split.thermal)} thermal images"
    )


def log_start_banner(config: Config, context: RunContext, dataset, out_dir: Path) -> None:
    """What the run is, before it starts: folder, config choices, data and device."""
    choices = " ".join(f"{g}={o}" for g, o in sorted(context.choices.items()))
    splits = [("train", dataset.train_split()), ("val", dataset.val_split())]
    splits.append(("test", dataset.test_split()))
    data = "; ".join(_split_line(name, split) for name, split in splits if split is not None)
    runtime = config.runtime
    log.info(
        "run %s in %s\n  config: %s\n  data: %s: %s\n  device: %s, %s mode%s, seed %s",
        config.name,
        out_dir,
        choices or "(composed without Hydra)",
        dataset.name,
        data,
        runtime.device_target,
        runtime.mode,
        ", compiled train step" if runtime.jit_step else ", eager train step",
        config.seed,
    )


def run_identity(config: Config, dataset) -> dict:
    """What a results record says about its run: preset name, seed, RegDB trial, config hash."""
    return {
        "name": config.name,
        "seed": config.seed,
        "trial": (config.dataset or {}).get("trial"),
        "dataset": dataset.name,
        "config_hash": config_hash(config),
    }


def checkpoint_identity(config: Config, dataset, path, meta: CheckpointMeta) -> dict:
    """A results record's identity for a checkpoint: the run that trained it, so that
    `task=table` matches evaluations of saved checkpoints like the training runs' own records.

    Name, seed, RegDB trial and config hash come from the checkpoint (plain values only; the
    current config fills in what an older or foreign checkpoint does not say).
    """
    state = meta.state or {}
    current = run_identity(config, dataset)

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


def rerank_settings(config: Config):
    """Keyword arguments of `re_ranking` when `eval.rerank` is on, else None."""
    if not config.eval.rerank:
        return None
    return {
        "k1": config.eval.rerank_k1,
        "k2": config.eval.rerank_k2,
        "lambda_value": config.eval.rerank_lambda,
    }


def test_and_report(
    extractor: FeatureExtractor,
    dataset,
    protocols: list,
    config: Config,
    identity: dict,
    flags: dict,
    out_dir: Path,
    tensorboard=None,
    step: int = 0,
) -> dict:
    """Evaluate on the test split, write results.json, log the table (and, to TensorBoard, the
    CMC curve, the test features in its projector and a rank list); returns the means."""
    split = dataset.test_split()
    features = extractor.split_features(split)
    records = evaluate_features(
        features,
        split,
        protocols,
        {**flags, **extractor.flags()},
        identity,
        rerank_settings(config),
        config.eval.distance,
    )
    summary = report_records(records, out_dir, dataset.name, tensorboard, step)
    if tensorboard is not None:
        log_test_pictures(tensorboard, features, split, config.eval.distance, step)
    return summary


# What the TensorBoard pictures of a test show: a sample of identities in the projector, the
# first thermal queries (numeric identity order) against the visible gallery in the rank list.
PROJECTOR_IDS, THUMBNAIL, RANKED_QUERIES, RANKED_MATCHES = 20, 32, 4, 5


def _square_thumbnail(image, side: int = THUMBNAIL):
    """A person crop resized to side x side/2, centred on a white side x side square (the
    projector's sprite needs square images)."""
    picture = Image.fromarray(image).convert("RGB").resize((side // 2, side), Image.BILINEAR)
    canvas = Image.new("RGB", (side, side), "white")
    canvas.paste(picture, (side // 4, 0))
    return np.asarray(canvas)


def log_test_pictures(tensorboard, features: dict, split, distance: str, step: int) -> None:
    """The test features (FC_att) of a sample of identities in TensorBoard's projector, with
    thumbnails and "identity modality" labels, and the rank list of a few fixed queries."""
    ids = np.concatenate([split.visible.ids, split.thermal.ids])
    chosen = sample_identities(ids, PROJECTOR_IDS)
    rows, labels, thumbnails = [], [], []
    for modality in ("visible", "thermal"):
        images = split.modality(modality)
        for index in np.flatnonzero(np.isin(images.ids, chosen)):
            rows.append(features[modality]["FC_att"][index])
            labels.append(f"{images.ids[index]} {modality}")
            thumbnails.append(_square_thumbnail(images.load(int(index))))
    tensorboard.log_embedding("test/FC_att", np.stack(rows), labels, np.stack(thumbnails), step)
    queries = shown_queries(split.thermal.ids, split.thermal.names, RANKED_QUERIES)
    dist = pairwise_distance(
        features["thermal"]["FC_att"][queries], features["visible"]["FC_att"], distance
    )
    top, top_distances = nearest(dist, RANKED_MATCHES)
    ranking = Ranking(
        _subset(split.thermal, queries),
        split.visible,
        top,
        top_distances,
        distance,
        known_average_precision(dist, split.thermal.ids[queries], split.visible.ids),
    )
    picture = ranking_image(ranking, RANKED_QUERIES, distance=distance)
    tensorboard.log_image("test/ranking", picture, step)


def _subset(images, indices):
    """The images at `indices` of an image set, as an in-memory set (for a rank list)."""
    pixels = np.stack([images.load(int(i)) for i in indices])
    names = [images.names[int(i)] for i in indices]
    return ArrayImageSet(pixels, images.ids[indices], images.cams[indices], names)


def report_records(records: list, out_dir: Path, what: str, tensorboard=None, step: int = 0):
    """Write results.json and cmc.png, log the table (and to TensorBoard); returns the means."""
    path = write_records(records, out_dir / "results.json")
    save_cmc_image(records, out_dir / "cmc.png")
    table = markdown_table(records)
    log.info("test results (%s), written to %s\n%s", what, path, table)
    summary = record_means(records)
    if tensorboard is not None:
        tensorboard.log_metrics("test", summary, step)
        tensorboard.log_image("test/cmc", cmc_image(records), step)
    return summary
