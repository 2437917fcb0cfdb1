"""task=visualize: pictures of what a checkpoint learned, from a dataset split.

t-SNE of the features (tsne.png), pair-distance distributions (distances.png), DDAG's attention
(parts.png: IWPA part weights as bands; graph.png: CGSA attention within a batch) and activation
maps of queries and their top matches (actmap.png); `visualize.json` records what was drawn and
the numbers behind each picture.
"""

import json

import mindspore as ms
import numpy as np
from PIL import Image

from ddag.config.context import RunContext
from ddag.config.schema import VISUAL_KINDS, Config
from ddag.data.augmentations.base import normalise
from ddag.data.feature_files import read_features
from ddag.errors import ConfigError
from ddag.evaluation.features import MODALITY_CODES
from ddag.evaluation.metrics import nearest, pairwise_distance
from ddag.models.attention.cgsa import identity_adjacency
from ddag.reporting import figures
from ddag.reporting import visual_stats as stats
from ddag.reporting.plots import shown_queries
from ddag.tasks.steps.data import build_dataset
from ddag.tasks.steps.networks import inference_model
from ddag.tasks.steps.runtime import output_dir, setup
from ddag.utils.logging import get_logger

log = get_logger(__name__)


FEATURE_KINDS = ("tsne", "distances")  # the kinds drawn from features alone


def _kinds(config: Config) -> list:
    task = config.task
    kinds = list(task.kinds)
    unknown = [k for k in kinds if k not in VISUAL_KINDS]
    if unknown or not kinds:
        raise ConfigError(f"task.kinds={kinds}: choose among {list(VISUAL_KINDS)}")
    if (task.checkpoint is None) == (task.features is None):
        raise ConfigError(
            "task=visualize needs task.checkpoint=PATH or task.features=[visible.npz,"
            "thermal.npz] (the files task=extract writes), not both"
        )
    needs_network = [k for k in kinds if k not in FEATURE_KINDS]
    if task.features is not None and needs_network:
        raise ConfigError(
            f"task.kinds {needs_network} draw the network's attention and feature maps: give "
            f"task.checkpoint, or keep task.kinds to {list(FEATURE_KINDS)} with task.features"
        )
    return kinds


def _rows(features: dict, split, feature: str):
    """(features, ids, modality names), visible rows first, of {modality: {"FC"|"FC_att":
    array}} features of a split (as `FeatureExtractor.split_features` and `read_features`
    give them)."""
    missing = [m for m in MODALITY_CODES if feature not in features[m]]
    first, second = list(MODALITY_CODES)
    common = [name for name in features[first] if name in features[second]]
    if missing and len(common) == 1:
        log.info(
            "task.feature=%s is not in the features; drawing their one feature array, %s",
            feature,
            common[0],
        )
        feature, missing = common[0], []
    if missing:
        raise ConfigError(
            f"task.feature={feature}: the {missing} features hold only "
            f"{list(features[missing[0]])}; choose one of {common} with task.feature=NAME "
            "(.npz keys fc, fc_att and features are FC, FC_att and feature)"
        )
    rows = np.concatenate([features[m][feature] for m in MODALITY_CODES])
    ids = np.concatenate([split.modality(m).ids for m in MODALITY_CODES])
    modality = np.concatenate([[m] * len(split.modality(m)) for m in MODALITY_CODES])
    return rows, ids, modality


def _split(config: Config):
    split = getattr(build_dataset(config), f"{config.task.split}_split")()
    if split is None:
        raise ConfigError(f"the dataset has no {config.task.split} split")
    return split


def _pixels(images, index: int, height: int, width: int) -> np.ndarray:
    image = Image.fromarray(images.load(int(index))).convert("RGB")
    return np.asarray(image.resize((width, height), Image.BILINEAR))


def _feature_maps(network, pixels, modality: str) -> np.ndarray:
    batch = ms.Tensor(np.stack([normalise(p) for p in pixels]))
    return network.feature_map(batch, MODALITY_CODES[modality]).asnumpy()


def draw_tsne(features, ids, modality, chosen, config, out) -> dict:
    mask = np.isin(ids, chosen)
    points = stats.embed_2d(features[mask], seed=config.seed)
    title = f"t-SNE of {config.task.feature} ({config.task.split} split)"
    figures.save_png(
        figures.tsne_figure(points, ids[mask], modality[mask], title), out / "tsne.png"
    )
    return {"file": "tsne.png", "identities": chosen.tolist(), "samples": int(mask.sum())}


def draw_distances(features, ids, modality, chosen, config, out) -> dict:
    mask = np.isin(ids, chosen)
    summary = stats.pair_statistics(features[mask], ids[mask], modality[mask], config.eval.distance)
    density, overlaps = summary["density"], {}
    for scope in ("cross-modality", "same-modality"):
        positive, negative = f"{scope} positive", f"{scope} negative"
        if positive in density and negative in density:
            overlaps[scope] = stats.overlap(density[positive], density[negative], summary["edges"])
    histogram = {"edges": summary["edges"], "density": density}
    picture = figures.distance_figure(histogram, overlaps, config.eval.distance)
    figures.save_png(picture, out / "distances.png")
    if overlaps:
        log.info("pair-distance overlap of positives and negatives: %s", overlaps)
    else:
        log.info(
            "no overlap to report: the chosen images give no pair of a kind (%s); choose more "
            "identities with task.max_ids",
            ", ".join(f"{k}: {n}" for k, n in summary["pairs"].items()),
        )
    return {
        "file": "distances.png",
        "overlap": overlaps,
        "pairs": summary["pairs"],
        "mean": summary["mean"],
        "edges": summary["edges"].tolist(),
        "density": {k: v.tolist() for k, v in density.items()},
    }


def _batch(split, chosen, count: int):
    """Up to `count` identities with two images in each modality: {modality: [indices]}."""
    picked, identities = {m: [] for m in MODALITY_CODES}, []
    for identity in chosen:
        rows = {m: np.flatnonzero(split.modality(m).ids == identity)[:2] for m in MODALITY_CODES}
        if all(len(r) == 2 for r in rows.values()):
            identities.append(int(identity))
            for m in MODALITY_CODES:
                picked[m] += rows[m].tolist()
        if len(identities) == count:
            break
    return identities, picked


def draw_attention(network, split, chosen, config, out) -> dict:
    height, width = config.loader.height, config.loader.width
    identities, picked = _batch(split, chosen, config.task.batch_ids)
    if not identities:
        raise ConfigError("no identity has two images in both modalities to draw the attention")
    pixels = {m: [_pixels(split.modality(m), i, height, width) for i in picked[m]] for m in picked}
    maps = {m: _feature_maps(network, pixels[m], m) for m in picked}
    record = {"identities": identities}
    if network.has_part_attention:  # one image per identity and modality
        shown = {m: picked[m][::2] for m in picked}
        all_pixels = pixels["visible"][::2] + pixels["thermal"][::2]
        all_maps = ms.Tensor(np.concatenate([maps["visible"][::2], maps["thermal"][::2]]))
        weights = network.part_attention.part_weights(all_maps).asnumpy()
        bounds = network.part_attention.part_bounds(all_maps.shape[2])
        rows = stats.part_rows(bounds, all_maps.shape[2], height)
        labels = [f"{m} id {split.modality(m).ids[i]}" for m in shown for i in shown[m]]
        picture = figures.part_weight_figure(all_pixels, rows, weights, labels)
        figures.save_png(picture, out / "parts.png")
        record["parts"] = {"file": "parts.png", "rows": rows, "weights": weights.tolist()}
    if network.has_graph_attention and network.token_backbone:
        log.info("graph.png is not drawn for a token backbone (its feature is the class token)")
    elif network.has_graph_attention:
        fmap = ms.Tensor(np.concatenate([maps["visible"], maps["thermal"]]))
        ids = np.concatenate([split.modality(m).ids[picked[m]] for m in picked])
        modality = np.array([m for m in picked for _ in picked[m]])
        pooled = network.pooled_features(fmap)
        adjacency = identity_adjacency(ms.Tensor(ids.astype(np.int32)))
        attention = network.graph_attention.head_attention(pooled, adjacency).asnumpy().mean(0)
        order = np.lexsort((modality, ids))
        attention = attention[np.ix_(order, order)]
        labels = [f"{ids[i]} {modality[i][0]}" for i in order]
        figures.save_png(figures.graph_attention_figure(attention, labels), out / "graph.png")
        record["graph"] = {"file": "graph.png", "samples": labels, "attention": attention.tolist()}
    if len(record) == 1:
        log.warning("the model has neither part nor graph attention: nothing to draw")
    return record


def draw_actmaps(network, split, features, ids, modality, config, out) -> dict:
    """Thermal queries across identities (`shown_queries`), each with its top visible matches,
    activation maps overlaid and every match framed right (green) or wrong (red)."""
    height, width = config.loader.height, config.loader.width
    offset = len(split.visible)  # features hold visible rows first, then thermal
    picked = shown_queries(split.thermal.ids, split.thermal.names, config.task.num_queries)
    query_rows = offset + picked
    gallery_rows = np.flatnonzero(modality == "visible")
    distances = pairwise_distance(
        features[query_rows], features[gallery_rows], config.eval.distance
    )
    matched, _ = nearest(distances, config.task.top_k)
    strips, record = [], []
    for row, top in zip(query_rows, gallery_rows[matched]):
        query = _pixels(split.thermal, row - offset, height, width)
        matches = [_pixels(split.visible, g, height, width) for g in top]
        heat = [
            stats.activation_map(m, height, width)
            for m in _feature_maps(network, [query], "thermal")
        ]
        heat += [
            stats.activation_map(m, height, width)
            for m in _feature_maps(network, matches, "visible")
        ]
        titles = [f"query id {ids[row]}"] + [f"#{k + 1} id {ids[g]}" for k, g in enumerate(top)]
        colours = [None] + [figures.match_colour(int(ids[row]), int(ids[g])) for g in top]
        strips.append(figures.actmap_figure([query] + matches, heat, titles, colours))
        record.append(
            {
                "query": int(row - offset),
                "query_id": int(ids[row]),
                "matches": top.tolist(),
                "ids": [int(ids[g]) for g in top],
                "correct": [bool(ids[g] == ids[row]) for g in top],
            }
        )
    figures.save_png(np.concatenate(strips, axis=0), out / "actmap.png")
    return {"file": "actmap.png", "queries": record}


def run(config: Config, context: RunContext = RunContext()) -> dict:
    kinds = _kinds(config)
    out = output_dir(config)
    if config.task.features is not None:
        stored, split = read_features(config.task.features)
        features, ids, modality = _rows(stored, split, config.task.feature)
        drawn = {"features": config.task.features, "kinds": kinds}
    else:
        setup(config)
        model, config = inference_model(config, context)
        network = model.network
        network.set_train(False)
        split = _split(config)
        extracted = model.extractor.split_features(split)
        features, ids, modality = _rows(extracted, split, config.task.feature)
        drawn = {"checkpoint": config.task.checkpoint, "split": config.task.split, "kinds": kinds}
    chosen = stats.sample_identities(ids, config.task.max_ids, config.seed)
    if "tsne" in kinds:
        drawn["tsne"] = draw_tsne(features, ids, modality, chosen, config, out)
    if "distances" in kinds:
        drawn["distances"] = draw_distances(features, ids, modality, chosen, config, out)
    if "attention" in kinds:
        drawn["attention"] = draw_attention(network, split, chosen, config, out)
    if "actmap" in kinds:
        drawn["actmap"] = draw_actmaps(network, split, features, ids, modality, config, out)
    (out / "visualize.json").write_text(json.dumps(drawn, indent=2))
    log.info("pictures %s written to %s (visualize.json says what each shows)", kinds, out)
    return drawn
