"""The numbers behind the pictures of task=visualize, computed without drawing anything.

Each function returns plain numpy arrays, so tests check them against direct computations and
`visualize.json` records them beside the PNG files.
"""

from typing import Dict

import numpy as np

from ddag.evaluation.metrics import pairwise_distance

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


def pair_distances(
    features: np.ndarray, ids: np.ndarray, modality: np.ndarray, distance: str = "cosine"
) -> Dict[str, np.ndarray]:
    """Distances of every unordered pair of samples, by kind (`PAIR_KINDS`): same or other
    identity, same or other modality. Cosine distance is 1 - cosine similarity."""
    dist = pairwise_distance(features, features, distance)
    if distance == "cosine":
        dist = 1.0 + dist  # pairwise_distance gives -similarity; 1 - similarity is >= 0
    upper = np.triu(np.ones(dist.shape, dtype=bool), k=1)
    same_id = ids[:, None] == ids[None, :]
    same_modality = modality[:, None] == modality[None, :]
    masks = {
        PAIR_KINDS[0]: same_id & ~same_modality,
        PAIR_KINDS[1]: ~same_id & ~same_modality,
        PAIR_KINDS[2]: same_id & same_modality,
        PAIR_KINDS[3]: ~same_id & same_modality,
    }
    return {kind: dist[mask & upper] for kind, mask in masks.items()}


def histograms(pairs: Dict[str, np.ndarray], bins: int = 50) -> Dict[str, object]:
    """Shared bin edges and the density histogram of each pair kind."""
    values = np.concatenate([v for v in pairs.values() if len(v)])
    edges = np.linspace(float(values.min()), float(values.max()) + 1e-9, bins + 1)
    counts = {kind: np.histogram(v, edges, density=True)[0] for kind, v in pairs.items() if len(v)}
    return {"edges": edges, "density": counts}


def overlap(positive: np.ndarray, negative: np.ndarray, edges: np.ndarray) -> float:
    """Overlap of two distance distributions on shared bins: the area under the lower of the two
    densities (0: apart, 1: identical)."""
    widths = np.diff(edges)
    p = np.histogram(positive, edges, density=True)[0]
    n = np.histogram(negative, edges, density=True)[0]
    return float((np.minimum(p, n) * widths).sum())


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
