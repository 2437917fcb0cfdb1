"""task=extract: FC and FC_att features of a folder or a dataset split, written to .npz."""

from pathlib import Path
from typing import Dict

import numpy as np

from ddag.api import ReIDModel
from ddag.config.context import RunContext
from ddag.config.schema import Config
from ddag.data.datasets.base import MODALITIES
from ddag.data.datasets.folder import folder_images
from ddag.errors import ConfigError
from ddag.tasks.steps.data import build_dataset
from ddag.tasks.steps.networks import inference_model
from ddag.tasks.steps.runtime import output_dir, setup
from ddag.utils.logging import get_logger
from ddag.utils.paths import file_in

log = get_logger(__name__)


def _check_request(config: Config) -> None:
    """What a folder needs, before the model is loaded: the folder and its modality."""
    task = config.task
    if not task.images:
        return
    if not Path(task.images).is_dir():
        raise ConfigError(f"task.images={task.images}: no such folder")
    if task.modality is None:
        raise ConfigError(
            f"task=extract of a folder needs task.modality={'|'.join(MODALITIES)}: it says which "
            "stem reads the images (a thermal folder through the visible stem gives other "
            "features)"
        )


def _image_sets(config: Config, model: ReIDModel) -> Dict[str, object]:
    """{modality: image set} to extract: the folder's, or the split's (both unless told)."""
    task = config.task
    if task.images:
        return {task.modality: folder_images(task.images, model.height, model.width)}
    split = getattr(build_dataset(config), f"{task.split}_split")()
    if split is None:
        raise ConfigError(f"the dataset has no {task.split} split")
    modalities = [task.modality] if task.modality else list(MODALITIES)
    return {modality: split.modality(modality) for modality in modalities}


def run(config: Config, context: RunContext = RunContext()) -> dict:
    path = file_in(output_dir(config), config.task.output, "task.output")  # before any work
    _check_request(config)
    setup(config)
    model, config = inference_model(config, context)
    parts = {}
    for modality, images in _image_sets(config, model).items():
        fc, fc_att = model.extract(images, modality)
        parts[modality] = (fc, fc_att, images)
        log.info("extracted features of %d %s images", len(images), modality)
    np.savez(
        path,
        fc=np.concatenate([p[0] for p in parts.values()]),
        fc_att=np.concatenate([p[1] for p in parts.values()]),
        names=np.array([n for p in parts.values() for n in p[2].names]),
        ids=np.concatenate([p[2].ids for p in parts.values()]),
        cams=np.concatenate([p[2].cams for p in parts.values()]),
        modality=np.array([m for m, p in parts.items() for _ in range(len(p[2]))]),
    )
    count = sum(len(p[2]) for p in parts.values())
    log.info("wrote features of %d images (%s) to %s", count, ", ".join(parts), path)
    return {"path": str(path), "count": count, "modalities": list(parts)}
