"""task=search: rank a gallery folder (one modality) for each query image (the other one)."""

import json

from PIL import Image

from ddag.config.context import RunContext
from ddag.config.schema import Config
from ddag.errors import ConfigError
from ddag.reporting.plots import ranking_image
from ddag.tasks.steps.networks import inference_model
from ddag.tasks.steps.runtime import output_dir, setup
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def run(config: Config, context: RunContext = RunContext()) -> dict:
    setup(config)
    task, distance = config.task, config.eval.distance
    if not task.query or not task.gallery:
        raise ConfigError("task=search needs task.query=FOLDER and task.gallery=FOLDER")
    model, _ = inference_model(config, context)
    ranking = model.search(
        task.query, task.gallery, task.modality, top_k=task.top_k, distance=distance
    )
    out = output_dir(config)
    (out / "ranking.json").write_text(json.dumps(ranking.to_dict(), indent=2))
    shown = min(task.num_queries, len(ranking.query))
    picture = ranking_image(ranking, shown, distance=distance)
    Image.fromarray(picture).save(out / "ranking.png")
    log.info(
        "ranking.png shows %d of %d queries (task.num_queries=%d)",
        shown,
        len(ranking.query),
        task.num_queries,
    )
    log.info(
        "ranked %d gallery images for %d %s queries: %s and %s",
        len(ranking.gallery),
        len(ranking.query),
        task.modality,
        out / "ranking.json",
        out / "ranking.png",
    )
    return {"queries": len(ranking.query)}
