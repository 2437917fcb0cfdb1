"""The numbers behind the pictures of task=visualize, computed without drawing anything.

Each function returns plain numpy arrays, so tests check them against direct computations and
`visualize.json` records them beside the PNG files.
"""

from typing import Dict

import numpy as np

from ddag.evaluation.metrics import DistanceBlocks

PAIR_KINDS = (
    "cross-modality positive",
    "cross-modality negative",
    "same-modality positive",
    "same-modality negative",
)


def sample_identities(ids: np.ndarray, max_ids: int, seed: int = 0) -> np.ndarray:
    """Sorted identities to show: all of them when there are at most `max_ids`, else a seeded
    sample of `max_ids` (t-SNE of a large split is unreadable and slow)."""
    unique = np.unique(ids)
    if len(unique) <= max_ids:
        return unique
    return np.sort(np.random.default_rng(seed).choice(unique, max_ids, replace=False))


def embed_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """t-SNE of (N, D) features to (N, 2) (scikit-learn, PCA initialisation)."""
    try:
        from sklearn.manifold import TSNE
    except ImportError as err:
        from ddag.errors import ConfigError

        raise ConfigError(
            "t-SNE needs scikit-learn: pip install -e '.[viz]' (or leave tsne out of task.kinds)"
        ) from err
    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    tsne = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity)
    return tsne.fit_transform(features.astype(np.float64))


def _pair_blocks(features, ids, modality, distance):
    """(kind, distances) of every unordered pair of samples, a block of rows at a time (a few
    million distances each: 24,000 samples take ~100 MB at a time instead of a 4.6 GB matrix of
    every pair)."""
    blocks = DistanceBlocks(features, features, distance)
    columns = np.arange(len(features))
    for rows in blocks.row_blocks():
        dist = blocks[rows]
        if distance == "cosine":
            dist = 1.0 + dist  # the blocks hold -similarity; 1 - similarity is >= 0
        upper = columns[None, :] > np.arange(rows.start, rows.stop)[:, None]
        same_id = ids[rows, None] == ids[None, :]
        same_modality = modality[rows, None] == modality[None, :]
        masks = (
            same_id & ~same_modality,
            ~same_id & ~same_modality,
            same_id & same_modality,
            ~same_id & same_modality,
        )
        for kind, mask in zip(PAIR_KINDS, masks):
            yield kind, dist[mask & upper]


def pair_statistics(
    features: np.ndarray,
    ids: np.ndarray,
    modality: np.ndarray,
    distance: str = "cosine",
    bins: int = 50,
) -> Dict[str, object]:
    """Distances of every unordered pair of samples, by kind (`PAIR_KINDS`: same or other
    identity, same or other modality), summarised: {"pairs": {kind: count}, "mean": {kind:
    mean}, "edges": bin edges shared by the kinds, "density": {kind: density histogram}}.
    Cosine distance is 1 - cosine similarity.

    Two passes over blocks of rows (the range, then the counts), so memory grows with the
    samples, not with their pairs; kinds without pairs have no mean or density."""
    counts = dict.fromkeys(PAIR_KINDS, 0)
    sums = dict.fromkeys(PAIR_KINDS, 0.0)
    low, high = np.inf, -np.inf
    for kind, values in _pair_blocks(features, ids, modality, distance):
        if len(values):
            counts[kind] += len(values)
            sums[kind] += float(values.sum())
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    if not any(counts.values()):
        from ddag.errors import ConfigError

        raise ConfigError(
            f"{len(features)} sample(s) give no pair to measure; choose more identities with "
            "task.max_ids"
        )
    edges = np.linspace(low, high + 1e-9, bins + 1)
    histogram = {kind: np.zeros(bins, np.int64) for kind in PAIR_KINDS if counts[kind]}
    for kind, values in _pair_blocks(features, ids, modality, distance):
        if len(values):
            histogram[kind] += np.histogram(values, edges)[0]
    widths = np.diff(edges)
    return {
        "pairs": counts,
        "mean": {kind: sums[kind] / counts[kind] for kind in histogram},
        "edges": edges,
        "density": {kind: h / (counts[kind] * widths) for kind, h in histogram.items()},
    }


def overlap(positive_density: np.ndarray, negative_density: np.ndarray, edges: np.ndarray) -> float:
    """Overlap of two distance distributions given as density histograms on shared bins: the
    area under the lower of the two densities (0: apart, 1: identical)."""
    return float((np.minimum(positive_density, negative_density) * np.diff(edges)).sum())


def activation_map(feature_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, h, w) feature map -> (height, width) in [0, 1]: the channel-wise L2 norm, scaled to
    its range and resized to the image (bilinear)."""
    from PIL import Image

    norm = np.sqrt((feature_map.astype(np.float64) ** 2).sum(axis=0))
    span = norm.max() - norm.min()
    norm = (norm - norm.min()) / span if span > 0 else np.zeros_like(norm)
    picture = Image.fromarray(norm.astype(np.float32), mode="F")
    return np.asarray(picture.resize((width, height), Image.BILINEAR), dtype=np.float64).clip(0, 1)


def part_rows(bounds, map_height: int, image_height: int):
    """Image rows [(top, bottom)] of each part, from its rows on a feature map of
    `map_height` rows."""
    scale = image_height / map_height
    return [(int(round(a * scale)), int(round(b * scale))) for a, b in bounds]
