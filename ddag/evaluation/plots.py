"""CMC curve images drawn with Pillow (no plotting dependency)."""

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


def cmc_image(records: List[ResultRecord], width: int = 640, height: int = 420) -> np.ndarray:
    """CMC curves (rank 1..k on x, 0-100 % on y), one per record: (height, width, 3) uint8."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 50, width - 190, 20, height - 40
    draw.rectangle([left, top, right, bottom], outline="black")
    for percent in range(0, 101, 20):
        y = bottom - (bottom - top) * percent / 100
        draw.line([left, y, right, y], fill=(220, 220, 220))
        draw.text((left - 35, y - 6), f"{percent:3d}", fill="black")
    ranks = max((len(r.cmc) for r in records), default=1)
    for rank in range(1, ranks + 1):
        x = left + (right - left) * (rank - 1) / max(ranks - 1, 1)
        if rank == 1 or rank % 5 == 0:
            draw.text((x - 4, bottom + 6), str(rank), fill="black")
    draw.text(((left + right) // 2 - 15, bottom + 22), "rank", fill="black")
    for i, record in enumerate(records):
        colour = _COLOURS[i % len(_COLOURS)]
        points = [
            (left + (right - left) * k / max(ranks - 1, 1), bottom - (bottom - top) * value)
            for k, value in enumerate(record.cmc)
        ]
        draw.line(points, fill=colour, width=2)
        label = f"{record.protocol} {record.feature}: r1 {100 * record.mean['rank1']:.1f}"
        draw.text((right + 10, top + 16 * i), label, fill=colour)
    return np.asarray(image)


def save_cmc_image(records: List[ResultRecord], path) -> None:
    """Write the CMC curves of `records` as a PNG file."""
    Image.fromarray(cmc_image(records)).save(path)


def ranking_image(ranking, max_queries: int = 8, thumb: tuple = (48, 96)) -> np.ndarray:
    """Rank list: each row a query then its top-k gallery images, (H, W, 3) uint8.

    A gallery image is framed green when it shares the query's identity and red when it does
    not, where both identities are known (>= 0); grey otherwise.
    """
    width, height = thumb
    rows = min(max_queries, len(ranking.query))
    k = ranking.indices.shape[1]
    gap = 6
    canvas = Image.new("RGB", ((k + 1) * (width + gap) + gap, rows * (height + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for r in range(rows):
        y = gap + r * (height + gap)
        query_id = ranking.query.ids[r]
        canvas.paste(Image.fromarray(ranking.query.load(r)).resize(thumb), (gap, y))
        for c, g in enumerate(ranking.indices[r]):
            x = gap + (c + 1) * (width + gap) + gap // 2
            canvas.paste(Image.fromarray(ranking.gallery.load(int(g))).resize(thumb), (x, y))
            gallery_id = ranking.gallery.ids[g]
            colour = (150, 150, 150)
            if query_id >= 0 and gallery_id >= 0:
                colour = (0, 170, 0) if gallery_id == query_id else (220, 0, 0)
            draw.rectangle([x - 2, y - 2, x + width + 1, y + height + 1], outline=colour, width=3)
    return np.asarray(canvas)
