"""CMC curves (matplotlib, `ddag/evaluation/figures.py`) and rank lists (Pillow)."""

from typing import List

import numpy as np
from PIL import Image, ImageDraw

from ddag.evaluation.figures import cmc_figure
from ddag.evaluation.results import ResultRecord


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


def _frame(draw, box, colour, width: int) -> None:
    """A thick coloured frame between thin black and white lines: it reads on any image."""
    x0, y0, x1, y1 = box
    draw.rectangle(
        [x0 - width - 1, y0 - width - 1, x1 + width + 1, y1 + width + 1], outline="black"
    )
    draw.rectangle([x0 - width, y0 - width, x1 + width, y1 + width], outline=colour, width=width)
    draw.rectangle([x0 - 1, y0 - 1, x1 + 1, y1 + 1], outline="white")


def ranking_image(
    ranking, max_queries: int = 8, thumb: tuple = (48, 96), distance: str = "cosine"
) -> np.ndarray:
    """Rank list: each row a query, then its top-k gallery images, (H, W, 3) uint8.

    Rows are the first `max_queries` queries in numeric identity order. Above each image: the
    query's identity, or the match's rank, identity and score (cosine: similarity, higher is
    closer; euclidean: distance). Frames: green when the match shares the query's identity, red
    when it does not (both known, >= 0), grey otherwise.
    """
    width, height = thumb
    order = query_order(ranking.query.ids, ranking.query.names)[:max_queries]
    k = ranking.indices.shape[1]
    gap, label, frame = 14, 32, 4
    row_height = height + label + gap
    canvas = Image.new(
        "RGB", ((k + 1) * (width + gap) + 2 * gap, len(order) * row_height + gap), "white"
    )
    draw = ImageDraw.Draw(canvas)
    score_name = "sim" if distance == "cosine" else "dist"
    for r, q in enumerate(order):
        y = gap + r * row_height + label
        query_id = int(ranking.query.ids[q])
        canvas.paste(Image.fromarray(ranking.query.load(int(q))).resize(thumb), (gap, y))
        draw.text((gap, y - label), f"query\nid {query_id}", fill="black")
        for c, (g, d) in enumerate(zip(ranking.indices[q], ranking.distances[q])):
            x = gap + (c + 1) * (width + gap) + gap
            canvas.paste(Image.fromarray(ranking.gallery.load(int(g))).resize(thumb), (x, y))
            gallery_id = int(ranking.gallery.ids[g])
            colour = (150, 150, 150)
            if query_id >= 0 and gallery_id >= 0:
                colour = (0, 170, 0) if gallery_id == query_id else (220, 0, 0)
            _frame(draw, (x, y, x + width - 1, y + height - 1), colour, frame)
            score = -float(d) if distance == "cosine" else float(d)
            text = f"#{c + 1} id {gallery_id}\n{score_name} {score:.2f}"
            draw.text((x - frame, y - label - 2), text, fill="black")
    return np.asarray(canvas)
