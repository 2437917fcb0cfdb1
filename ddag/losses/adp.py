"""CAJ's adaptive triplet (TripletLoss_ADP, "enhanced squared difference").

Ye et al., "Channel Augmented Joint Learning for Visible-Infrared Recognition" (ICCV 2021);
reference: mangye16/Cross-Modal-Re-ID-baseline `ICCV21_CAJ/loss.py` (TripletLoss_ADP). As WRT,
every positive and negative of an anchor counts with softmax weights over its distance, here
sharpened by `alpha`; the loss is the soft-margin loss of gamma x (d_an - d_ap) (`square=0`) or,
as CAJ trains (`--square 1`), of the squared difference gamma x (d_ap - d_an)^2 (capped at 88),
whose sign says whether the anchor's hardest-weighted positive is further than its negative.
"""

from mindspore import ops
from mindspore.common import dtype as mstype

from ddag.errors import ConfigError
from ddag.losses.terms import LossTerm, euclidean_distances
from ddag.losses.wrt import _softmax_weights

MAX_SQUARED = 88.0  # the reference's clamp_max: exp stays finite in float32


class AdaptiveTriplet(LossTerm):
    """ADP loss on features (N, D) over the whole batch.

    Args:
        alpha: sharpness of the softmax weights (CAJ 1).
        gamma: scale of the difference (CAJ 1).
        square: 1 for the squared difference (CAJ's setting), 0 for the plain soft margin.
    """

    def __init__(
        self,
        output: str,
        weight: float = 1.0,
        dynamic: bool = False,
        alpha: float = 1.0,
        gamma: float = 1.0,
        square: int = 1,
    ):
        super().__init__(output, weight, dynamic)
        if square not in (0, 1) or alpha <= 0 or gamma <= 0:
            raise ConfigError(
                f"AdaptiveTriplet: square={square} must be 0 or 1, alpha={alpha} and "
                f"gamma={gamma} > 0"
            )
        self.alpha, self.gamma, self.square = float(alpha), float(gamma), int(square)

    def construct(self, features, labels):
        dist = euclidean_distances(features)
        same = ops.equal(labels.reshape(-1, 1), labels.reshape(1, -1)).astype(mstype.float32)
        other = 1.0 - same
        dist_ap, dist_an = dist * same, dist * other
        furthest_positive = (dist_ap * _softmax_weights(dist_ap * self.alpha, same)).sum(axis=1)
        closest_negative = (dist_an * _softmax_weights(-dist_an * self.alpha, other)).sum(axis=1)
        if self.square == 0:
            return ops.softplus(self.gamma * (furthest_positive - closest_negative)).mean()
        difference = ops.clamp(
            self.gamma * (furthest_positive - closest_negative) ** 2, max=MAX_SQUARED
        )
        # The reference's target y: -1 where the positive is further than the negative.
        sign = 1.0 - 2.0 * (furthest_positive > closest_negative).astype(mstype.float32)
        return ops.softplus(-sign * difference).mean()
