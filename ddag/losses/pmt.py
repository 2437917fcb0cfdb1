"""PMT's loss terms (Lu et al., "Learning Progressive Modality-shared Transformers for Effective
Visible-Infrared Person Re-identification", AAAI 2023).

Reference: hulu88/PMT `Pytorch-PMT-VI-ReID/loss/DCL.py`, `loss/MSEL.py`, `loss/Triplet.py` and
how `train.py` calls them. Every term reads the batch as the P x K sampler lays it out: a
visible half, then a thermal half, each identity's K images consecutive. Distances are
Euclidean with squared distances clamped at 1e-12 before the root, on raw features
(`feat_norm='no'`).

- `PerModalityCrossEntropy`: the cross-entropy of the visible half plus that of the thermal
  half (train.py's `criterion_ID(score1, label1) + criterion_ID(score2, label2)`).
- `IntraModalityTriplet`: batch-hard triplets mined within each half, summed (the first
  `PL_EPOCH` epochs); the joint triplet over both halves is `BatchHardTriplet` with margin 0.1.
- `DiscriminativeCenterLoss` (DCL): centre of each identity over both modalities; the mean
  distance from the centres to their own images, over the mean distance to the negatives closer
  than each centre's average negative.
- `ModalityEnhancementLoss` (MSEL): per image, the squared difference between its mean
  distance to same-identity images of the other modality and to those of its own modality
  (itself left out), averaged per modality, the two modalities averaged.
"""

from mindspore import ops

from ddag.losses.terms import LossTerm, euclidean_distances


def _halves(fn, values, labels):
    """fn over the visible half plus fn over the thermal half."""
    half = values.shape[0] // 2
    return fn(values[:half], labels[:half]) + fn(values[half:], labels[half:])


def _batch_hard(features, labels, margin: float):
    dist = euclidean_distances(features)
    same = ops.equal(labels.reshape(-1, 1), labels.reshape(1, -1))
    hardest_positive = ops.where(same, dist, ops.zeros_like(dist)).max(axis=1)
    hardest_negative = ops.where(same, ops.full_like(dist, 1e12), dist).min(axis=1)
    return ops.relu(hardest_positive - hardest_negative + margin).mean()


class PerModalityCrossEntropy(LossTerm):
    needs_paired_halves = True

    def construct(self, logits, labels):
        return _halves(ops.cross_entropy, logits, labels)


class IntraModalityTriplet(LossTerm):
    """Batch-hard triplets within each modality half, summed (margin: PMT's 0.1)."""

    needs_paired_halves = True

    def __init__(self, output: str, weight: float = 1.0, dynamic: bool = False, margin=0.1):
        super().__init__(output, weight, dynamic)
        self.margin = float(margin)

    def construct(self, features, labels):
        return _halves(self._hard, features, labels)

    def _hard(self, features, labels):
        return _batch_hard(features, labels, self.margin)


class _PerIdentityTerm(LossTerm):
    """A term that reads K consecutive images per identity in each modality half."""

    needs_paired_halves = True

    def __init__(self, output: str, weight: float = 1.0, dynamic: bool = False, num_instances=4):
        super().__init__(output, weight, dynamic)
        if num_instances < 2:
            raise ValueError(f"num_instances={num_instances}: needs two images per identity")
        self.k = int(num_instances)


class DiscriminativeCenterLoss(_PerIdentityTerm):
    """DCL (weight: PMT's 0.5). `num_instances` is K, the images per identity and modality."""

    def construct(self, features, labels):
        half = features.shape[0] // 2
        ids = half // self.k
        visible = features[:half].reshape(ids, self.k, -1)
        thermal = features[half:].reshape(ids, self.k, -1)
        centres = (visible.sum(axis=1) + thermal.sum(axis=1)) / (2 * self.k)
        dist = euclidean_distances(centres, features)  # (ids, 2 x half)
        centre_labels = labels[: half : self.k]
        negative = ops.not_equal(centre_labels.reshape(-1, 1), labels.reshape(1, -1))
        negative = negative.astype(dist.dtype)
        mean_negative = (dist * negative).sum(axis=1, keepdims=True) / negative.sum(
            axis=1, keepdims=True
        )
        close = negative * (dist < mean_negative).astype(dist.dtype)
        an_mean = ((dist * close).sum(axis=1) / close.sum(axis=1)).mean()
        positive = 1.0 - negative
        ap_mean = (dist * positive).sum() / positive.sum()
        return ap_mean / an_mean


class ModalityEnhancementLoss(_PerIdentityTerm):
    """MSEL (weight: PMT's 0.5). `num_instances` is K, the images per identity and modality."""

    def construct(self, features, labels):
        half = features.shape[0] // 2
        dist = euclidean_distances(features)
        label = labels[:half]
        positive = ops.equal(label.reshape(-1, 1), label.reshape(1, -1)).astype(dist.dtype)
        others = positive - ops.eye(half, half, dist.dtype)
        intra_visible = (dist[:half, :half] * others).sum(axis=1) / (self.k - 1)
        intra_thermal = (dist[half:, half:] * others).sum(axis=1) / (self.k - 1)
        cross_visible = (dist[:half, half:] * positive).sum(axis=1) / positive.sum(axis=1)
        cross_thermal = (dist[half:, :half] * positive).sum(axis=1) / positive.sum(axis=1)
        return (
            ((cross_visible - intra_visible) ** 2).mean()
            + ((cross_thermal - intra_thermal) ** 2).mean()
        ) / 2
