"""One data-parallel step, run by tests/test_distributed.py under msrun or as one process.

Usage: python distributed_step.py OUT_DIR {single|distributed}. Writes params_rank<r>.npz.
BatchNorm uses its running statistics and the loss is the identity term only, so the step is
per-sample decomposable and the two ranks' average equals one process on the global batch.
"""

import sys
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

from ddag.data.datasets.synthetic import SyntheticDataset
from ddag.data.sampler import IdentitySampler
from ddag.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ddag.engine.distributed import gradient_reducer, init_distributed
from ddag.engine.optim import GroupSGD
from ddag.engine.step import make_train_step
from ddag.losses.objective import Objective
from ddag.losses.terms import CrossEntropy
from ddag.models.backbones.resnet import ResNet
from ddag.models.ddag import DDAG


def main(out: Path, distributed: bool):
    ms.set_context(mode=ms.PYNATIVE_MODE)  # one step: eager is cheaper than compiling
    ms.set_device("CPU")
    context = init_distributed(distributed)
    ms.set_seed(0)
    dataset = SyntheticDataset(
        num_train_ids=8, num_val_ids=0, num_test_ids=1, images_per_id=4, height=32, width=16
    )
    train = dataset.train_split()
    sampler = IdentitySampler(
        train.visible.ids,
        train.thermal.ids,
        4,
        2,
        seed=0,
        num_shards=context.size,
        shard_id=context.rank,
    )
    v_idx, t_idx = sampler.epoch_pairs(0)
    v_idx, t_idx = v_idx[: sampler.batch_size], t_idx[: sampler.batch_size]

    def images(image_set, idx):
        x = np.stack([image_set.load(int(i)) for i in idx]).astype(np.float32) / 255.0
        x = (x - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
        return ms.Tensor(x.transpose(0, 3, 1, 2).astype(np.float32))

    network = DDAG(ResNet((1, 1, 1, 1), (4, 4, 8, 8), 8), dataset.num_train_ids)
    for _, cell in network.cells_and_names():
        if isinstance(cell, (nn.BatchNorm1d, nn.BatchNorm2d)):
            cell.use_batch_statistics = False
    objective = Objective(network, {"id": CrossEntropy("logits")})
    rate = np.full(1, 0.5, np.float32)  # plain SGD, one step
    groups = [{"params": objective.trainable_params(), "lr": rate, "weight_decay": 0.0}]
    optimizer = GroupSGD(groups, momentum=0.0, nesterov=False)
    step = make_train_step(objective, optimizer, gradient_reducer(context, optimizer), jit=False)
    objective.set_train(True)
    labels = ms.Tensor(train.visible.ids[v_idx].astype(np.int32))
    step(
        images(train.visible, v_idx),
        images(train.thermal, t_idx),
        labels,
        ms.Tensor(train.thermal.ids[t_idx].astype(np.int32)),
        ms.Tensor(0.0, ms.float32),
        ms.Tensor(np.zeros(objective.noise_size(sampler.batch_size), np.float32)),
    )
    params = {p.name: p.asnumpy() for p in network.trainable_params()}
    np.savez(out / f"params_{'rank' if distributed else 'single'}{context.rank}.npz", **params)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] == "distributed")
