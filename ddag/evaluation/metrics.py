"""Rank metrics for cross-modality re-identification: CMC, mAP and mINP.

Pure numpy and vectorised over queries: one stable argsort, a boolean match matrix and cumulative
sums. Reproduces `eval_sysu` and `eval_regdb` of the reference (mangye16/DDAG `eval_metrics.py`);
shared/reference/golden_metrics.json holds its outputs and tests/test_metrics.py compares with them.

Reference rules kept on purpose:
- SYSU-MM01: a query from camera 3 ignores every gallery image from camera 2 (whatever the
  identity). The CMC counts *distinct* gallery identities in rank order, is summed over every
  query and divided by the number of queries whose identity is still in the gallery.
- RegDB (and the synthetic set): standard CMC over the ranked gallery, no camera rule.
- mAP and mINP average over the queries that have at least one true match.

Ties: distances are sorted with a stable sort, so equal distances keep gallery order. The
reference uses numpy's default (unstable) quicksort; on tie-free input both agree.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ddag.errors import EvaluationError

PROTOCOLS = ("sysu", "regdb")


@dataclass(frozen=True)
class RankResult:
    """Outcome of one ranking evaluation.

    Attributes:
        cmc: cumulative match characteristic, shape (max_rank,), fractions in [0, 1].
        mAP: mean average precision in [0, 1].
        mINP: mean inverse negative penalty in [0, 1].
        num_valid_queries: queries whose identity appears in their (filtered) gallery.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int

    def rank(self, k: int) -> float:
        """CMC at rank k (1-based)."""
        return float(self.cmc[k - 1])

    def as_dict(self, ranks=(1, 5, 10, 20)) -> dict:
        """Rank-k, mAP and mINP as a flat dict of floats (fractions)."""
        out = {f"rank{k}": self.rank(k) for k in ranks if k <= len(self.cmc)}
        out.update(mAP=float(self.mAP), mINP=float(self.mINP))
        return out


def _check_inputs(distmat, query_ids, gallery_ids, query_cams, gallery_cams, protocol):
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"unknown protocol {protocol!r}; must be one of {PROTOCOLS}")
    if distmat.ndim != 2:
        raise EvaluationError(
            f"distance matrix must be 2-D (queries x gallery), got {distmat.shape}"
        )
    num_q, num_g = distmat.shape
    if num_q == 0 or num_g == 0:
        raise EvaluationError(f"empty query or gallery: distance matrix shape {distmat.shape}")
    if len(query_ids) != num_q:
        raise EvaluationError(f"{len(query_ids)} query ids for {num_q} distance-matrix rows")
    if len(gallery_ids) != num_g:
        raise EvaluationError(f"{len(gallery_ids)} gallery ids for {num_g} distance-matrix columns")
    if not np.all(np.isfinite(distmat)):
        raise EvaluationError("distance matrix contains NaN or inf (check the features)")
    if protocol == "sysu":
        if query_cams is None or gallery_cams is None:
            raise EvaluationError("protocol 'sysu' needs query_cams and gallery_cams")
        if len(query_cams) != num_q or len(gallery_cams) != num_g:
            raise EvaluationError(
                f"camera arrays ({len(query_cams)}, {len(gallery_cams)}) do not match the "
                f"distance matrix {distmat.shape}"
            )


def rank_metrics(
    distmat: np.ndarray,
    query_ids: np.ndarray,
    gallery_ids: np.ndarray,
    query_cams: Optional[np.ndarray] = None,
    gallery_cams: Optional[np.ndarray] = None,
    max_rank: int = 20,
    protocol: str = "sysu",
) -> RankResult:
    """CMC, mAP and mINP of a query x gallery distance matrix (lower distance = closer).

    Args:
        distmat: (num_query, num_gallery) distances.
        query_ids: (num_query,) identity labels.
        gallery_ids: (num_gallery,) identity labels.
        query_cams: (num_query,) camera ids; required for protocol "sysu".
        gallery_cams: (num_gallery,) camera ids; required for protocol "sysu".
        max_rank: length of the returned CMC. Where fewer gallery entries (or, for SYSU,
            distinct identities) remain than `max_rank`, the curve is padded with its last value
            (the reference crashes there).
        protocol: "sysu" (camera-3/camera-2 rule, identity-deduplicated CMC) or "regdb".
    """
    distmat = np.asarray(distmat, dtype=np.float64)
    query_ids = np.asarray(query_ids)
    gallery_ids = np.asarray(gallery_ids)
    _check_inputs(distmat, query_ids, gallery_ids, query_cams, gallery_cams, protocol)
    num_q, num_g = distmat.shape

    order = np.argsort(distmat, axis=1, kind="stable")
    ranked_ids = gallery_ids[order]
    matches = ranked_ids == query_ids[:, None]
    if protocol == "sysu":
        ranked_cams = np.asarray(gallery_cams)[order]
        keep = ~((np.asarray(query_cams)[:, None] == 3) & (ranked_cams == 2))
    else:
        keep = np.ones_like(matches)
    matches &= keep

    # 1-based position of each kept entry in the filtered ranking (dropped entries do not count).
    position = np.cumsum(keep, axis=1)
    hits_so_far = np.cumsum(matches, axis=1)
    num_pos = hits_so_far[:, -1]
    valid = num_pos > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise EvaluationError("no query identity appears in the gallery")

    precision_at_hits = np.where(matches, hits_so_far / np.maximum(position, 1), 0.0)
    average_precision = precision_at_hits.sum(axis=1)[valid] / num_pos[valid]
    last_hit = num_g - 1 - np.argmax(matches[:, ::-1], axis=1)
    inverse_negative_penalty = num_pos[valid] / position[valid, last_hit[valid]]

    first_hit = np.argmax(matches, axis=1)
    if protocol == "sysu":
        first_rank = _distinct_identity_rank(ranked_ids, keep, first_hit)
    else:
        first_rank = position[np.arange(num_q), first_hit]
    ranks = np.arange(1, max_rank + 1)
    found = valid[:, None] & (first_rank[:, None] <= ranks[None, :])
    cmc = found.sum(axis=0) / num_valid
    return RankResult(
        cmc=cmc.astype(np.float64),
        mAP=float(average_precision.mean()),
        mINP=float(inverse_negative_penalty.mean()),
        num_valid_queries=num_valid,
    )


def _distinct_identity_rank(ranked_ids, keep, first_hit):
    """1-based rank of each query's first true match among distinct kept gallery identities.

    An entry counts when it is the first kept occurrence of its identity in the query's ranking;
    the rank of the first true match is the number of such entries up to and including it.
    """
    num_q, num_g = ranked_ids.shape
    _, id_index = np.unique(ranked_ids, return_inverse=True)
    id_index = id_index.reshape(num_q, num_g)
    num_ids = int(id_index.max()) + 1
    # Dropped entries get a key past every real one so they never count as first occurrences.
    key = np.arange(num_q)[:, None] * (num_ids + 1) + np.where(keep, id_index, num_ids)
    first_occurrence = np.zeros(num_q * num_g, dtype=bool)
    first_occurrence[np.unique(key.ravel(), return_index=True)[1]] = True
    first_occurrence = first_occurrence.reshape(num_q, num_g) & keep
    distinct_rank = np.cumsum(first_occurrence, axis=1)
    return distinct_rank[np.arange(num_q), first_hit]


def cosine_distance(query_features: np.ndarray, gallery_features: np.ndarray) -> np.ndarray:
    """Negative inner product of L2-normalised features, (num_query, num_gallery).

    This is the reference's distance; features are normalised here so unnormalised input is safe.
    """
    q = _l2_normalise(np.asarray(query_features, dtype=np.float32), "query")
    g = _l2_normalise(np.asarray(gallery_features, dtype=np.float32), "gallery")
    return -(q @ g.T)


def _l2_normalise(x: np.ndarray, name: str) -> np.ndarray:
    if x.ndim != 2:
        raise EvaluationError(f"{name} features must be 2-D (N, D), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise EvaluationError(f"{name} features contain NaN or inf")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
