"""Weighted regularised triplet (WRT) loss of AGW.

AGW (Ye et al., TPAMI 2021) section 4.1, equation of the weighted regularised triplet;
reference: mangye16/Cross-Modal-Re-ID-baseline `loss.py` (TripletLoss_WRT, softmax_weights).
Every positive and negative of an anchor counts, weighted by a softmax over its distance
(positives: larger distance, more weight; negatives: smaller distance, more weight), and the
margin-free soft-margin loss log(1 + exp(d_ap - d_an)) is averaged over the anchors.
"""

from mindspore import ops
from mindspore.common import dtype as mstype

from ddag.losses.terms import LossTerm, euclidean_distances


def _softmax_weights(dist, mask):
    """exp(dist) normalised over the masked entries of each row, as the reference computes it."""
    top = (dist * mask).max(axis=1, keepdims=True)
    exp = ops.exp(dist - top) * mask
    return exp / (exp.sum(axis=1, keepdims=True) + 1e-6)


class WeightedRegularizedTriplet(LossTerm):
    """WRT loss on features (N, D) over the whole two-modality batch; no margin to tune."""

    def construct(self, features, labels):
        dist = euclidean_distances(features)
        same = ops.equal(labels.reshape(-1, 1), labels.reshape(1, -1)).astype(mstype.float32)
        other = 1.0 - same
        dist_ap, dist_an = dist * same, dist * other
        furthest_positive = (dist_ap * _softmax_weights(dist_ap, same)).sum(axis=1)
        closest_negative = (dist_an * _softmax_weights(-dist_an, other)).sum(axis=1)
        return ops.softplus(furthest_positive - closest_negative).mean()
