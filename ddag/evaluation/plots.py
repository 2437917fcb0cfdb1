"""CMC curves and rank lists drawn with Pillow (no plotting dependency)."""

from typing import List

import numpy as np
from PIL import Image, ImageDraw

from ddag.evaluation.results import ResultRecord

_COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
]


def cmc_image(
    records: List[ResultRecord], width: int = 720, height: int = 440, title: str = "CMC"
) -> np.ndarray:
    """CMC curves, one per (protocol, feature) record: rank 1..k on x, matching rate 0-100 % on
    y, with a title, axis labels and a legend; (height, width, 3) uint8."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 60, width - 230, 34, height - 50
    draw.text((left, 10), title, fill="black")
    draw.rectangle([left, top, right, bottom], outline="black")
    for percent in range(0, 101, 20):
        y = bottom - (bottom - top) * percent / 100
        draw.line([left, y, right, y], fill=(220, 220, 220))
        draw.text((left - 30, y - 6), f"{percent:3d}", fill="black")
    draw.text((4, (top + bottom) // 2 - 20), "match", fill="black")
    draw.text((4, (top + bottom) // 2 - 6), "rate %", fill="black")
    ranks = max((len(r.cmc) for r in records), default=1)
    for rank in range(1, ranks + 1):
        x = left + (right - left) * (rank - 1) / max(ranks - 1, 1)
        if rank == 1 or rank % 5 == 0:
            draw.text((x - 4, bottom + 6), str(rank), fill="black")
    draw.text(((left + right) // 2 - 15, bottom + 24), "rank", fill="black")
    for i, record in enumerate(records):
        colour = _COLOURS[i % len(_COLOURS)]
        points = [
            (left + (right - left) * k / max(ranks - 1, 1), bottom - (bottom - top) * value)
            for k, value in enumerate(record.cmc)
        ]
        draw.line(points, fill=colour, width=2)
        label = f"{record.protocol} {record.feature}: rank-1 {100 * record.mean['rank1']:.1f} %"
        draw.line(
            [right + 10, top + 16 * i + 6, right + 24, top + 16 * i + 6], fill=colour, width=3
        )
        draw.text((right + 30, top + 16 * i), label, fill=colour)
    return np.asarray(image)


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
