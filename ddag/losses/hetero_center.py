"""Hetero-center loss: pull each identity's visible and thermal feature centres together.

Zhu et al., "Hetero-Center Loss for Cross-Modality Person Re-Identification" (Neurocomputing
2020), equation 3: for every identity in the batch, the squared Euclidean distance between the
mean visible and the mean thermal feature (less a margin, at least 0), summed over identities
(the authors' HcLoss with MSELoss(reduction="sum")).
"""

from mindspore import ops
from mindspore.common import dtype as mstype

from ddag.losses.terms import LossTerm


class HeteroCenter(LossTerm):
    """Hetero-center loss on features (2B, D): rows 0..B-1 visible, B..2B-1 thermal.

    Centres are computed from the identity labels, so any batch order works; an identity
    missing from one modality contributes nothing.

    Args:
        margin: distances below it cost nothing (reference default 0).
    """

    needs_paired_halves = True

    def __init__(
        self, output: str, weight: float = 1.0, dynamic: bool = False, margin: float = 0.0
    ):
        super().__init__(output, weight, dynamic)
        if margin < 0:
            raise ValueError(f"hetero-center margin must be >= 0, got {margin}")
        self.margin = float(margin)

    def construct(self, features, labels):
        half = features.shape[0] // 2  # needs_paired_halves: visible first, thermal second
        visible, thermal = features[:half], features[half:]
        labels_v, labels_t = labels[:half].reshape(-1, 1), labels[half:].reshape(1, -1)
        same_vv = ops.equal(labels_v, labels_v.reshape(1, -1)).astype(mstype.float32)
        same_vt = ops.equal(labels_v, labels_t).astype(mstype.float32)
        count_v = same_vv.sum(axis=1, keepdims=True)
        count_t = same_vt.sum(axis=1, keepdims=True)
        # Each visible row's identity centre in both modalities.
        centre_v = ops.matmul(same_vv, visible) / count_v
        centre_t = ops.matmul(same_vt, thermal) / ops.maximum(count_t, 1.0)
        distance = ((centre_v - centre_t) ** 2).sum(axis=1)
        present = (count_t.reshape(-1) > 0).astype(mstype.float32)
        # Every identity appears count_v times among the visible rows: weight 1/count_v each.
        per_row = ops.relu(distance - self.margin) * present / count_v.reshape(-1)
        return per_row.sum()
