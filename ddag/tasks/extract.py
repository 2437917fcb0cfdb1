"""task=extract: FC and FC_att features of a folder or a dataset split, written to .npz."""

import numpy as np
from omegaconf import DictConfig

from ddag.api import ReIDModel
from ddag.data.datasets.base import SPLITS
from ddag.data.datasets.folder import folder_images
from ddag.errors import ConfigError
from ddag.tasks import common
from ddag.utils.logging import get_logger
from ddag.utils.paths import file_in

log = get_logger(__name__)


def _images(cfg: DictConfig, model: ReIDModel):
    if cfg.task.images:
        return folder_images(cfg.task.images, model.height, model.width)
    if cfg.task.split not in SPLITS:
        raise ConfigError(f"task.split={cfg.task.split!r}; choose one of {list(SPLITS)}")
    split = getattr(common.build_dataset(cfg), f"{cfg.task.split}_split")()
    if split is None:
        raise ConfigError(f"the dataset has no {cfg.task.split} split")
    return split.modality(cfg.task.modality)


def run(cfg: DictConfig) -> dict:
    path = file_in(common.output_dir(cfg), cfg.task.output, "task.output")  # before any work
    common.setup(cfg)
    model, cfg = common.inference_model(cfg)
    images = _images(cfg, model)
    fc, fc_att = model.extract(images, cfg.task.modality)
    np.savez(
        path,
        fc=fc,
        fc_att=fc_att,
        names=np.array(images.names),
        ids=images.ids,
        cams=images.cams,
        modality=cfg.task.modality,
    )
    log.info("wrote features of %d %s images to %s", len(images), cfg.task.modality, path)
    return {"path": str(path), "count": len(images)}
