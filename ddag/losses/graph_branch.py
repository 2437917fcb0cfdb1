"""DDAG's graph branch as one training component: its dynamic loss weight and its dropout noise.

Both are drawn or updated on the host and enter the compiled step as inputs after the batch
(`step_inputs`): the weight w_G (`DynamicGraphWeight`, paper section 3.4) and the uniform noise
of the graph attention's dropout, drawn from the generator seeded by (seed, step) so that a
resumed run repeats it. Its state (w_G and the epoch's running sum) is checkpointed under the
objective's declared state key.
"""

from typing import Dict, Tuple

import mindspore as ms
import numpy as np

from ddag.losses.dynamic_weight import DynamicGraphWeight


class GraphBranchInputs:
    """Per-step inputs and state of the graph branch.

    Args:
        noise_size: length of one step's dropout noise (`network.noise_size(2 x pairs)`).
        seed: seed of the noise; step s draws from `default_rng((seed, s))`.
    """

    def __init__(self, noise_size: int, seed: int = 0):
        self.noise_size, self.seed = noise_size, seed
        self.weight = DynamicGraphWeight()

    def noise(self, step: int) -> np.ndarray:
        """The dropout noise of training step `step`."""
        return np.random.default_rng((self.seed, step)).random(self.noise_size, dtype=np.float32)

    def step_inputs(self, step: int) -> Tuple[ms.Tensor, ms.Tensor]:
        """(graph weight, dropout noise) of training step `step`."""
        return ms.Tensor(self.weight.value, ms.float32), ms.Tensor(self.noise(step))

    def step_end(self, instance_loss: float) -> None:
        """A finished step's instance-level loss (the non-graph terms) feeds the weight."""
        self.weight.accumulate(instance_loss)

    def epoch_end(self) -> None:
        self.weight.end_epoch()

    def scalars(self) -> Dict[str, float]:
        return {"graph_weight": self.weight.value}

    def state_dict(self) -> dict:
        return {"graph_weight": self.weight.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.weight.load_state_dict(state["graph_weight"])
