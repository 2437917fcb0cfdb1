"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017), vectorised with numpy.

It is transductive (it looks at the whole query and gallery set at once), so results computed with
it are tagged `rerank: true` and are not comparable with the paper's numbers, which use none.

Steps, over all N = Q + G samples: distances scaled per column; k1-nearest neighbours; the
k-reciprocal sets R(i) = {j in kNN(i) : i in kNN(j)}, expanded by the half-size sets of their
members that overlap R(i) by more than 2/3; Gaussian weights on the expanded sets; local query
expansion over the k2 nearest neighbours; Jaccard distance between the weight vectors, mixed
with the original distance.
"""

import numpy as np

from ddag.errors import EvaluationError
from ddag.utils.memory import allocatable_bytes

# Bytes per (N x N) entry at the peak: float32 distances and weights, int64 ranks, three boolean
# neighbour sets and np.exp's float64 temporary (measured 37 at N = 3000).
_BYTES_PER_PAIR = 40

# Queries per block of the Jaccard step: (block, G, N) float32 temporaries stay near 100 MB.
_BLOCK_ELEMENTS = 25_000_000


def _reciprocal(rank: np.ndarray, k: int) -> np.ndarray:
    """(N, N) bool: j is among the k+1 nearest of i and i among the k+1 nearest of j."""
    n = rank.shape[0]
    nearest = np.zeros((n, n), dtype=bool)
    nearest[np.arange(n)[:, None], rank[:, : k + 1]] = True
    return nearest & nearest.T


def re_ranking(
    query: np.ndarray, gallery: np.ndarray, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> np.ndarray:
    """Re-ranked (Q, G) distances from L2-normalised query (Q, D) and gallery (G, D) features.

    It works on (Q + G) x (Q + G) matrices; a set whose matrices do not fit the memory left is
    refused before any is allocated."""
    needed, available = _BYTES_PER_PAIR * (len(query) + len(gallery)) ** 2, allocatable_bytes()
    if needed > available:
        raise EvaluationError(
            f"re-ranking {len(query)} queries against {len(gallery)} gallery images needs about "
            f"{needed / 2**30:.1f} GiB ({len(query) + len(gallery)}^2 pairs), more than the "
            f"{available / 2**30:.1f} GiB this process may still take; leave eval.rerank out "
            "for this set or score it on a machine with more memory"
        )
    features = np.concatenate([query, gallery]).astype(np.float32)
    num_query, n = len(query), len(features)
    dist = np.maximum(2.0 - 2.0 * features @ features.T, 0.0)
    dist = (dist / np.maximum(dist.max(axis=0, keepdims=True), 1e-12)).T
    rank = np.argsort(dist, axis=1, kind="stable")

    reciprocal = _reciprocal(rank, k1)
    half = int(np.around(k1 / 2))
    half_reciprocal = _reciprocal(rank, half)
    expanded = reciprocal.copy()
    # Candidates j of each R(i); their half sets as padded index rows (-1 = none).
    rows, candidates = np.nonzero(reciprocal)
    nearest_half = rank[:, : half + 1]
    in_half_set = np.take_along_axis(half_reciprocal, nearest_half, axis=1)
    half_members = np.where(in_half_set, nearest_half, -1)
    members = half_members[candidates]  # (P, half + 1)
    valid = members >= 0
    overlap = (reciprocal[rows[:, None], np.maximum(members, 0)] & valid).sum(axis=1)
    keep = overlap > (2.0 / 3.0) * valid.sum(axis=1)
    pair_rows = np.repeat(rows[keep], half + 1)
    pair_cols = members[keep].ravel()
    expanded[pair_rows[pair_cols >= 0], pair_cols[pair_cols >= 0]] = True

    weights = np.where(expanded, np.exp(-dist), 0.0).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    if k2 > 1:
        expanded_weights = np.empty_like(weights)
        step = max(1, _BLOCK_ELEMENTS // (k2 * n))
        for start in range(0, n, step):
            expanded_weights[start : start + step] = weights[rank[start : start + step, :k2]].mean(
                1
            )
        weights = expanded_weights

    gallery_weights = weights[num_query:]
    jaccard = np.empty((num_query, n - num_query), dtype=np.float32)
    block = max(1, _BLOCK_ELEMENTS // max(1, gallery_weights.size))
    for start in range(0, num_query, block):
        stop = min(start + block, num_query)
        shared = np.minimum(weights[start:stop, None, :], gallery_weights[None]).sum(-1)
        jaccard[start:stop] = 1.0 - shared / (2.0 - shared)
    return jaccard * (1 - lambda_value) + dist[:num_query, num_query:] * lambda_value
