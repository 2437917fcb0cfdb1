"""DEEN's losses on the expanded embeddings: center-guided pair mining (CPM) and the output value
term that carries the orthogonal loss the network computes.

Reference: ZYK100/LLCM `DEEN/loss.py` (class CPMLoss) and `DEEN/train.py` (how it is called).
The features are the pooled features of the whole expanded batch: rows [0, 2B) are the input
embeddings (B visible, then B thermal), [2B, 4B) the first expansion, [4B, 6B) the second.
CPM is applied to (input, first expansion) and to (input, second expansion) and the two are
summed. Inside one call the four blocks are visible (1), thermal (2), expanded visible (3) and
expanded thermal (4); each block's identity centres are the means of its consecutive groups of
K images (the P x K sampler's layout). With d the Euclidean distance between centres and every
mask of the reference reduced to what it selects (one identity per centre):

- ap_123 = d(c2_i, c3_i), an_123 = d(c1_i, c3_i) (no gradient, `.detach()` in the reference),
  an_33 = min over j != i of d(c3_i, c3_j), an_11 likewise among c1;
- ap_124 = d(c1_i, c4_i), an_124 = d(c2_i, c4_i) (no gradient), an_44 and an_22 likewise;
- loss = (rank(an_123, ap_123) + (rank(an_33, ap_123) + rank(an_11, ap_123)) / 2
          + rank(an_124, ap_124) + (rank(an_44, ap_124) + rank(an_22, ap_124)) / 2) / 2,

where rank(a, p) = mean(max(0, p - a + margin)) is PyTorch's MarginRankingLoss with target 1.
"""

from mindspore import ops

from ddag.losses.terms import LossTerm, euclidean_distances


class CenterPairMining(LossTerm):
    """CPM over the expanded batch (weight: DEEN's lambda_1, 0.8).

    Args:
        ids_per_batch: P, the identities of a batch (`loader.num_ids`); every block holds K
            consecutive images of each.
        margin: ranking margin (reference 0.2).
    """

    needs_paired_halves = True
    needs_rows_per_image = 3  # the objective refuses this term for a network without DEE

    def __init__(
        self,
        output: str,
        weight: float = 1.0,
        dynamic: bool = False,
        ids_per_batch: int = 8,
        margin: float = 0.2,
    ):
        super().__init__(output, weight, dynamic)
        if ids_per_batch < 2:
            raise ValueError(f"ids_per_batch={ids_per_batch}: CPM needs two identities or more")
        self.ids_per_batch = int(ids_per_batch)
        self.margin = float(margin)

    def _centres(self, block):
        return block.reshape(self.ids_per_batch, -1, block.shape[1]).mean(axis=1)

    def _rank(self, negative, positive):
        return ops.relu(positive - negative + self.margin).mean()

    def _nearest_other(self, centres):
        dist = euclidean_distances(centres, centres)
        eye = ops.eye(dist.shape[0], dist.shape[0], dist.dtype)
        return (dist + eye * 1e12).min(axis=1)

    def _pair(self, originals, expanded):
        half = originals.shape[0] // 2
        c1, c2 = self._centres(originals[:half]), self._centres(originals[half:])
        c3, c4 = self._centres(expanded[:half]), self._centres(expanded[half:])
        ap_123 = ops.diagonal(euclidean_distances(c2, c3))
        an_123 = ops.stop_gradient(ops.diagonal(euclidean_distances(c1, c3)))
        ap_124 = ops.diagonal(euclidean_distances(c1, c4))
        an_124 = ops.stop_gradient(ops.diagonal(euclidean_distances(c2, c4)))
        near_1, near_2 = self._nearest_other(c1), self._nearest_other(c2)
        near_3, near_4 = self._nearest_other(c3), self._nearest_other(c4)
        loss_123 = self._rank(an_123, ap_123) + 0.5 * (
            self._rank(near_3, ap_123) + self._rank(near_1, ap_123)
        )
        loss_124 = self._rank(an_124, ap_124) + 0.5 * (
            self._rank(near_4, ap_124) + self._rank(near_2, ap_124)
        )
        return (loss_123 + loss_124) / 2

    def construct(self, features, labels):
        count = features.shape[0] // 3
        originals = features[:count]
        first, second = features[count : 2 * count], features[2 * count :]
        return self._pair(originals, first) + self._pair(originals, second)


class OutputValue(LossTerm):
    """A scalar the network computes itself (DEEN's orthogonal loss, weight lambda_2 0.01)."""

    def construct(self, value, labels):
        return value
