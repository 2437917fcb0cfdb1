"""Training steps: the compiled train step with its optimiser, as training and benchmarks use it."""

import mindspore as ms

from ddag.config.instantiate import build
from ddag.config.schema import Config
from ddag.engine.distributed import gradient_reducer
from ddag.engine.step import make_train_step
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def mixed_precision(config: Config, network):
    """Loss scaler for `runtime.amp_level` (None at O0), after switching the backbone to float16.

    O1, O2 and auto: the stems and trunk compute in float16 with BatchNorm in float32; O3 also
    runs BatchNorm in float16. Heads, attention branches and losses stay in float32.
    """
    level = config.runtime.amp_level
    if level == "O0" or (level == "auto" and config.runtime.device_target == "CPU"):
        return None
    network.use_mixed_precision(keep_batchnorm_fp32=level != "O3")
    log.info("mixed precision %s: float16 backbone, dynamic loss scaling", level)
    return ms.amp.DynamicLossScaler(scale_value=2.0**12, scale_factor=2, scale_window=500)


def build_train_step(config: Config, objective, rates, ranks=None):
    """(step, optimizer, optimiser recipe) of `objective` under the configured optimiser,
    mixed precision and compilation; `rates` (the schedule's RateTable, or per-step factors
    of the recipe's rate) give each parameter group its rate at every step, and `ranks` (a
    DistributedContext) averages gradients over an msrun job's ranks."""
    loss_scaler = mixed_precision(config, objective.network)
    recipe = build(config.optimizer)
    optimizer = recipe.build(objective.network, rates)
    step = make_train_step(
        objective,
        optimizer,
        gradient_reducer(ranks, optimizer) if ranks is not None else None,
        jit=config.runtime.jit_step,
        loss_scaler=loss_scaler,
    )
    return step, optimizer, recipe
