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
