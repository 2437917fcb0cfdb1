"""Figures drawn with matplotlib (Agg backend: no screen needed), returned as RGB arrays.

Each function takes the numbers `ddag/reporting/visual_stats.py` computed (or result records)
and returns an (H, W, 3) uint8 image; `save_png` writes one. Nothing here computes a metric.
"""

from typing import Dict, List, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402

from ddag.evaluation.metrics import ranking_scores  # noqa: E402

MARKERS = {"visible": "o", "thermal": "^"}


def _array(figure) -> np.ndarray:
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return image


def save_png(image: np.ndarray, path) -> None:
    """Write an (H, W, 3) uint8 image as PNG."""
    Image.fromarray(image).save(path)


def cmc_figure(records, title: str = "CMC", size=(7.2, 4.4)) -> np.ndarray:
    """CMC curves, one per (protocol, feature) record, with title, axis labels and legend."""
    figure, axes = plt.subplots(figsize=size, dpi=100)
    for record in records:
        ranks = np.arange(1, len(record.cmc) + 1)
        label = f"{record.protocol} {record.feature}: rank-1 {100 * record.mean['rank1']:.1f} %"
        axes.plot(ranks, 100 * np.asarray(record.cmc), linewidth=2, label=label)
    axes.set(title=title, xlabel="rank", ylabel="matching rate (%)", ylim=(0, 100))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    if records:
        axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return _array(figure)


def tsne_figure(points: np.ndarray, ids: np.ndarray, modality: Sequence[str], title: str):
    """2-D embedding: colour by identity, marker by modality (circle visible, triangle
    thermal)."""
    figure, axes = plt.subplots(figsize=(7, 6), dpi=100)
    identities = np.unique(ids)
    colours = plt.get_cmap("tab20", max(len(identities), 1))
    modality = np.asarray(modality)
    for i, identity in enumerate(identities):
        for name, marker in MARKERS.items():
            mask = (ids == identity) & (modality == name)
            if mask.any():
                axes.scatter(*points[mask].T, color=colours(i), marker=marker, s=28)
    for name, marker in MARKERS.items():
        axes.scatter([], [], color="grey", marker=marker, label=name)
    axes.legend(loc="best", fontsize=8, title=f"{len(identities)} identities")
    axes.set(title=title, xticks=[], yticks=[])
    figure.tight_layout()
    return _array(figure)


def distance_figure(histogram: Dict, overlaps: Dict[str, float], distance: str) -> np.ndarray:
    """Density of the distances of positive and negative pairs, same- and cross-modality."""
    figure, axes = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    edges = histogram["edges"]
    centres = (edges[:-1] + edges[1:]) / 2
    styles = {"positive": "-", "negative": "--"}
    for kind, density in histogram["density"].items():
        style = styles[kind.split()[-1]]
        colour = "tab:red" if kind.startswith("cross") else "tab:blue"
        axes.plot(centres, density, style, color=colour, label=kind)
    text = ", ".join(f"{k} overlap {v:.3f}" for k, v in overlaps.items())
    axes.set(
        title=f"pair distances ({text})",
        xlabel=f"{distance} distance",
        ylabel="density",
    )
    axes.title.set_fontsize(9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return _array(figure)


def _image_strip(images: List[np.ndarray], titles, heading: str):
    """A one-row figure of `images` with their titles: (figure, axes), axes one per image."""
    figure, axes = plt.subplots(1, len(images), figsize=(1.6 * len(images) + 0.6, 3.6), dpi=100)
    axes = np.atleast_1d(axes)
    for axis, image, title in zip(axes, images, titles):
        axis.imshow(image)
        axis.set(title=title, xticks=[], yticks=[])
        axis.title.set_fontsize(7)
    figure.suptitle(heading, fontsize=9)
    return figure, axes


def part_weight_figure(images: List[np.ndarray], rows: List, weights: np.ndarray, titles):
    """Each image with its IWPA parts drawn as the network pools them: beside the image, one
    bar per part spanning the image rows the part averages (adaptive pooling's bins, which
    overlap), coloured and labelled by the part's weight."""
    figure, axes = _image_strip(images, titles, "IWPA parts: rows each part pools, its weight")
    cmap = plt.get_cmap("viridis")
    for axis, image, weight in zip(axes, images, weights):
        height, width = image.shape[:2]
        bar = max(3.0, width / 4)
        for p, ((top, bottom), w) in enumerate(zip(rows, weight)):
            left = width + 1 + p * (bar + 1)
            axis.add_patch(
                plt.Rectangle(
                    (left, top - 0.5), bar, bottom - top, color=cmap(float(w)), clip_on=False
                )
            )
            axis.text(
                left + bar / 2,
                (top + bottom) / 2,
                f"{w:.2f}",
                rotation=90,
                color="black" if w > 0.5 else "white",  # viridis is bright at the top
                fontsize=6,
                ha="center",
                va="center",
            )
            axis.hlines([top - 0.5, bottom - 0.5], -0.5, left, colors="white", linewidth=0.4)
        axis.set_xlim(-0.5, width + 1 + len(rows) * (bar + 1))
        axis.set_ylim(height - 0.5, -0.5)
    figure.tight_layout()
    return _array(figure)


def graph_attention_figure(attention: np.ndarray, labels: List[str]) -> np.ndarray:
    """The graph branch's mean head attention within a batch, samples ordered by identity."""
    figure, axes = plt.subplots(figsize=(6.5, 5.8), dpi=100)
    shown = axes.imshow(attention, cmap="magma", vmin=0)
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    axes.set_yticks(range(len(labels)), labels, fontsize=6)
    axes.set(title="CGSA attention (mean of the heads)", xlabel="attended sample", ylabel="sample")
    figure.colorbar(shown, ax=axes, fraction=0.046)
    figure.tight_layout()
    return _array(figure)


def actmap_figure(
    images: List[np.ndarray], maps: List[np.ndarray], titles, colours=None
) -> np.ndarray:
    """Images with their activation maps overlaid (jet colours, half transparent), each framed
    in its colour (`match_colour`: a match right or wrong) where `colours` are given."""
    heading = "activation maps (channel-wise L2 norm of the last feature map)"
    figure, axes = _image_strip(images, titles, heading)
    for index, (axis, heat) in enumerate(zip(axes, maps)):
        axis.imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        if colours is not None and colours[index] is not None:
            for spine in axis.spines.values():
                spine.set(color=colours[index], linewidth=4)
    figure.tight_layout()
    return _array(figure)


MATCH, MISMATCH, UNKNOWN = "#00aa00", "#dc0000", "#969696"
SCORE_LABELS = {"similarity": "sim", "distance": "dist"}  # `ranking_scores` names, abridged


def match_colour(query_id: int, match_id: int) -> str:
    """Green for a match of the query's identity, red for another, grey where either is
    unknown (negative)."""
    if query_id < 0 or match_id < 0:
        return UNKNOWN
    return MATCH if match_id == query_id else MISMATCH


def ranking_figure(rows, distance: str = "cosine", thumb=(48, 96), notes=None) -> np.ndarray:
    """A rank list: one row per query, the query then its matches, each titled (query: its
    identity; match: rank, identity and score, cosine: similarity, higher is closer; euclidean:
    distance) and framed green when it shares the query's identity, red when it does not (both
    known), grey otherwise.

    Args:
        rows: per query, (query image, query id, [(match image, match id, distance), ...]).
        distance: "cosine" (scores shown as similarity, the negated distance) or "euclidean".
        thumb: (width, height) of each picture in pixels, at 100 dpi.
        notes: per query, a line added under its title (its AP), or None.
    """
    columns = 1 + max((len(matches) for _, _, matches in rows), default=0)
    width, height = thumb[0] / 100 + 0.35, thumb[1] / 100 + 0.45
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(columns * width, len(rows) * height), dpi=100, squeeze=False
    )
    for r, (query, query_id, matches) in enumerate(rows):
        note = f"\n{notes[r]}" if notes and notes[r] else ""
        cells = [(query, f"query\nid {query_id}{note}", "black", 1)]
        name, scores = ranking_scores([value for _, _, value in matches], distance)
        for k, ((image, match_id, _), score) in enumerate(zip(matches, scores)):
            title = f"#{k + 1} id {match_id}\n{SCORE_LABELS[name]} {score:.2f}"
            cells.append((image, title, match_colour(query_id, match_id), 4))
        for c, axis in enumerate(axes[r]):
            axis.set(xticks=[], yticks=[])
            if c >= len(cells):
                axis.set_axis_off()
                continue
            image, title, colour, line = cells[c]
            axis.imshow(np.asarray(Image.fromarray(image).resize(thumb)))
            axis.set_title(title, fontsize=7)
            for spine in axis.spines.values():
                spine.set(color=colour, linewidth=line)
    figure.tight_layout(pad=0.4)
    return _array(figure)
