"""task=search: rank a gallery folder (one modality) for each query image (the other one)."""

import json

from omegaconf import DictConfig
from PIL import Image

from ddag.errors import ConfigError
from ddag.evaluation.plots import ranking_image
from ddag.tasks import common
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def run(cfg: DictConfig) -> dict:
    common.setup(cfg)
    if not cfg.task.query or not cfg.task.gallery:
        raise ConfigError("task=search needs task.query=FOLDER and task.gallery=FOLDER")
    model, _ = common.inference_model(cfg)
    ranking = model.search(
        cfg.task.query,
        cfg.task.gallery,
        cfg.task.modality,
        top_k=int(cfg.task.top_k),
        distance=cfg.eval.distance,
    )
    out = common.output_dir(cfg)
    (out / "ranking.json").write_text(json.dumps(ranking.to_dict(), indent=2))
    shown = min(int(cfg.task.num_queries), len(ranking.query))
    picture = ranking_image(ranking, shown, distance=cfg.eval.distance)
    Image.fromarray(picture).save(out / "ranking.png")
    log.info(
        "ranking.png shows %d of %d queries (task.num_queries=%d)",
        shown,
        len(ranking.query),
        int(cfg.task.num_queries),
    )
    log.info(
        "ranked %d gallery images for %d %s queries: %s and %s",
        len(ranking.gallery),
        len(ranking.query),
        cfg.task.modality,
        out / "ranking.json",
        out / "ranking.png",
    )
    return {"queries": len(ranking.query)}
