"""Loss terms. Each reads one named network output and the batch labels and returns a scalar.

The objective (`ddag/losses/objective.py`) multiplies every term by its weight and sums them; a
`dynamic` term is multiplied instead by DDAG's per-epoch graph weight (see `dynamic_weight.py`).
References: mangye16/DDAG `train_ddag.py` (criterion) and `loss.py` (TripletLoss).
"""

from mindspore import nn, ops
from mindspore.common import dtype as mstype


class LossTerm(nn.Cell):
    """Common fields of a term.

    Args:
        output: name of the network output the term reads (see `DDAG.output_names`).
        weight: constant factor in the total loss.
        dynamic: scale by the dynamic graph weight instead of `weight` (DDAG's graph term).

    A term that reads the batch as a visible half and a thermal half of equal size sets
    `needs_paired_halves`; it cannot serve a batch with two visible views. A term that reads a
    fixed number of embeddings per image (DEEN's CPM: 3) sets `needs_rows_per_image`.
    """

    needs_paired_halves = False
    needs_rows_per_image = None

    def __init__(self, output: str, weight: float = 1.0, dynamic: bool = False):
        super().__init__()
        self.output = output
        self.weight = float(weight)
        self.dynamic = bool(dynamic)


def euclidean_distances(features, others=None):
    """(N, D) [, (M, D)] -> (N, M) Euclidean distances (M = N: `features` against themselves),
    squared distances clamped at 1e-12 before the root (as the reference codes' pdist: the
    diagonal is 1e-6, not 0)."""
    squared = (features * features).sum(axis=1, keepdims=True)
    if others is None:  # one norm term used twice: the gradient graph of the reference runs
        dist = (
            squared + squared.transpose(1, 0) - 2.0 * ops.matmul(features, features.transpose(1, 0))
        )
    else:
        other_squared = (others * others).sum(axis=1, keepdims=True).transpose(1, 0)
        dist = squared + other_squared - 2.0 * ops.matmul(features, others.transpose(1, 0))
    return ops.sqrt(ops.clamp(dist, min=1e-12))


class CrossEntropy(LossTerm):
    """Identity cross-entropy on logits (N, classes)."""

    def construct(self, logits, labels):
        return ops.cross_entropy(logits, labels)


class LabelSmoothingCrossEntropy(LossTerm):
    """Cross-entropy against `(1 - epsilon) * one_hot + epsilon / classes` (Szegedy et al. 2016,
    as in the re-ID strong baselines' CrossEntropyLabelSmooth).

    Args:
        epsilon: smoothing in [0, 1) (0.1 usual); 0 equals CrossEntropy.
    """

    def __init__(
        self, output: str, weight: float = 1.0, dynamic: bool = False, epsilon: float = 0.1
    ):
        super().__init__(output, weight, dynamic)
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"label smoothing epsilon must be in [0, 1), got {epsilon}")
        self.epsilon = float(epsilon)

    def construct(self, logits, labels):
        return ops.cross_entropy(logits, labels, label_smoothing=self.epsilon)


class NegativeLogLikelihood(LossTerm):
    """NLL of log-probabilities (N, classes), as used for the graph-attention branch."""

    def construct(self, log_probs, labels):
        picked = ops.gather_elements(log_probs, 1, labels.reshape(-1, 1).astype(mstype.int32))
        return -picked.mean()


class BatchHardTriplet(LossTerm):
    """Batch-hard triplet loss on features (N, D) with Euclidean distance.

    For each anchor: hardest positive (farthest same-identity sample, itself included) and
    hardest negative (closest other identity) over the whole two-modality batch;
    mean of max(0, d_ap - d_an + margin). Distances are clamped at 1e-12 before the square root.

    Args:
        margin: triplet margin (paper 0.3).
    """

    def __init__(
        self, output: str, weight: float = 1.0, dynamic: bool = False, margin: float = 0.3
    ):
        super().__init__(output, weight, dynamic)
        self.margin = float(margin)

    def construct(self, features, labels):
        dist = euclidean_distances(features)
        same = ops.equal(labels.reshape(-1, 1), labels.reshape(1, -1))
        hardest_positive = ops.where(same, dist, ops.zeros_like(dist)).max(axis=1)
        far = ops.full_like(dist, 1e12)
        hardest_negative = ops.where(same, far, dist).min(axis=1)
        return ops.relu(hardest_positive - hardest_negative + self.margin).mean()
