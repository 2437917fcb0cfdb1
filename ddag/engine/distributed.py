"""Data-parallel training on MindSpore's own launcher (msrun).

Every rank builds the same network and samples a disjoint share of each identity-balanced batch
(`IdentitySampler(num_shards, shard_id)`); gradients are averaged across ranks before the
optimiser step, so the global batch is the configured P x K and the learning rate needs no
scaling. Batch statistics (BatchNorm) and the batch-coupled losses (batch-hard triplet, the graph
branch) are computed over each rank's share, as in the reference's multi-device training.
"""

import os
from dataclasses import dataclass

import mindspore as ms
from mindspore import nn

from ddag.errors import DeviceError


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the job: rank and number of ranks (1 when not distributed)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(enabled: bool) -> DistributedContext:
    """Join the msrun job when `enabled`; a single-process context otherwise."""
    if not enabled:
        return DistributedContext()
    if "MS_WORKER_NUM" not in os.environ and "RANK_SIZE" not in os.environ:
        raise DeviceError(
            "runtime.distributed=true needs MindSpore's launcher: start the run with "
            "msrun --worker_num=N --local_worker_num=N run.py ... runtime.distributed=true"
        )
    from mindspore.communication import get_group_size, get_rank, init

    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    return DistributedContext(get_rank(), get_group_size())


def gradient_reducer(context: DistributedContext, optimizer):
    """Averages gradients across ranks, or None in a single process."""
    if context.size == 1:
        return None
    return nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=context.size)
