"""task=extract: FC and FC_att features of a folder or a dataset split, written to .npz."""

import numpy as np

from ddag.api import ReIDModel
from ddag.config.context import RunContext
from ddag.config.schema import Config
from ddag.data.datasets.folder import folder_images
from ddag.errors import ConfigError
from ddag.tasks.steps.data import build_dataset
from ddag.tasks.steps.networks import inference_model
from ddag.tasks.steps.runtime import output_dir, setup
from ddag.utils.logging import get_logger
from ddag.utils.paths import file_in

log = get_logger(__name__)


def _images(config: Config, model: ReIDModel):
    task = config.task
    if task.images:
        return folder_images(task.images, model.height, model.width)
    split = getattr(build_dataset(config), f"{task.split}_split")()
    if split is None:
        raise ConfigError(f"the dataset has no {task.split} split")
    return split.modality(task.modality)


def run(config: Config, context: RunContext = RunContext()) -> dict:
    path = file_in(output_dir(config), config.task.output, "task.output")  # before any work
    setup(config)
    model, config = inference_model(config, context)
    images = _images(config, model)
    modality = config.task.modality
    fc, fc_att = model.extract(images, modality)
    np.savez(
        path,
        fc=fc,
        fc_att=fc_att,
        names=np.array(images.names),
        ids=images.ids,
        cams=images.cams,
        modality=modality,
    )
    log.info("wrote features of %d %s images to %s", len(images), modality, path)
    return {"path": str(path), "count": len(images)}
