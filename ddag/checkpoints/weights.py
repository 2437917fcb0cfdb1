"""Weight files of any origin as {MindSpore-style name: numpy array}.

A torchvision or timm ResNet then reads like a model-zoo MindSpore ResNet (`conv1.*`, `bn1.*`,
`layer1.0.*`, `fc.*`), and the reference DDAG code's checkpoints like ours through
`ddag.checkpoints.names.REFERENCE_DDAG_PREFIXES`.
"""

from typing import Dict

import numpy as np

from ddag.checkpoints.names import torch_to_mindspore_names
from ddag.io.weights import TORCH_NAMING, read_weight_file


def read_weights(path) -> Dict[str, np.ndarray]:
    """{name: array} of a weight file (`ddag.io.weights.read_weight_file`), PyTorch names
    translated to MindSpore ones."""
    arrays, naming = read_weight_file(path)
    return torch_to_mindspore_names(arrays) if naming == TORCH_NAMING else arrays
