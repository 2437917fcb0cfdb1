"""CMC curves and rank lists of result records and rankings (drawn by `figures.py`)."""

from typing import List

import numpy as np
from PIL import Image

from ddag.evaluation.results import ResultRecord
from ddag.reporting.figures import cmc_figure, ranking_figure


def cmc_image(
    records: List[ResultRecord], width: int = 720, height: int = 440, title: str = "CMC"
) -> np.ndarray:
    """CMC curves, one per (protocol, feature) record: rank 1..k on x, matching rate 0-100 % on
    y, with a title, axis labels and a legend; (height, width, 3) uint8 (matplotlib)."""
    return cmc_figure(records, title=title, size=(width / 100, height / 100))


def save_cmc_image(records: List[ResultRecord], path) -> None:
    """Write the CMC curves of `records` as a PNG file."""
    Image.fromarray(cmc_image(records)).save(path)


def query_order(ids: np.ndarray, names: List[str]) -> np.ndarray:
    """Query indices by identity as a number (2 before 10), then by name."""
    return np.lexsort((np.asarray(names, dtype=object).astype(str), np.asarray(ids)))


def shown_queries(ids: np.ndarray, names: List[str], count: int) -> np.ndarray:
    """`count` queries to show, across identities as torchreid's ranked results are: the first
    (by name) of each identity in numeric identity order, then the second of each, and so on."""
    order = query_order(ids, names)
    if len(order) == 0:
        return order
    _, first, group = np.unique(np.asarray(ids)[order], return_index=True, return_inverse=True)
    within = np.arange(len(order)) - first[group]  # 0 for each identity's first query
    return order[np.lexsort((np.arange(len(order)), within))][:count]


def ranking_image(
    ranking, max_queries: int = 8, thumb: tuple = (48, 96), distance: str = "cosine"
) -> np.ndarray:
    """Rank list of `max_queries` queries across identities (`shown_queries`), each row the
    query (with its AP where known) then its top-k gallery images (`figures.ranking_figure`),
    (H, W, 3) uint8."""
    order = shown_queries(ranking.query.ids, ranking.query.names, max_queries)
    rows, notes = [], []
    for q in order:
        matches = [
            (ranking.gallery.load(int(g)), int(ranking.gallery.ids[g]), float(d))
            for g, d in zip(ranking.indices[q], ranking.distances[q])
        ]
        rows.append((ranking.query.load(int(q)), int(ranking.query.ids[q]), matches))
        ap = None if ranking.average_precision is None else ranking.average_precision[q]
        notes.append("" if ap is None or np.isnan(ap) else f"AP {ap:.2f}")
    return ranking_figure(rows, distance=distance, thumb=thumb, notes=notes)
