"""Features once -> every protocol and trial -> ResultRecords."""

from typing import Dict, List, Optional

from ddag.errors import ConfigError, EvaluationError
from ddag.evaluation.features import FeatureExtractor
from ddag.evaluation.metrics import DISTANCES, DistanceBlocks, rank_metrics
from ddag.evaluation.rerank import re_ranking
from ddag.evaluation.results import ResultRecord


def evaluate_features(
    features: Dict,
    split,
    protocols: List,
    flags: Optional[Dict] = None,
    identity: Optional[Dict] = None,
    rerank: Optional[Dict] = None,
    distance: str = "cosine",
) -> List[ResultRecord]:
    """Score precomputed split features on protocols.

    `features[modality][name]` is an (images, dim) array aligned with `split.modality(...)`
    (`FeatureExtractor.split_features` gives FC and FC_att; external features any names).
    `distance`: "cosine" (the reference code's) or "euclidean" (the SYSU-MM01 authors').
    `rerank`: keyword arguments of `re_ranking` (k1, k2, lambda_value): every protocol then
    ranks with the re-ranked distances instead. None: no re-ranking.
    """
    if distance not in DISTANCES:
        raise ConfigError(f"eval.distance={distance!r}; choose one of {list(DISTANCES)}")
    if rerank is not None and distance != "cosine":
        raise ConfigError(
            "eval.rerank re-ranks cosine distances of normalised features; use it with "
            "eval.distance=cosine"
        )
    flags = {**(flags or {}), "rerank": rerank is not None, "distance": distance}
    if rerank is not None:
        flags.update(transductive=True, rerank_settings=dict(rerank))
    records = []
    for protocol in protocols:
        per_feature, cmcs = {}, {}
        for trial in range(protocol.trials):
            q_mod, q_idx, g_mod, g_idx = protocol.select(split, trial)
            q_set, g_set = split.modality(q_mod), split.modality(g_mod)
            names = [n for n in features[q_mod] if n in features[g_mod]]
            if not names:
                raise EvaluationError(
                    f"the {q_mod} features ({sorted(features[q_mod])}) and the {g_mod} "
                    f"features ({sorted(features[g_mod])}) have no name in common: nothing to "
                    "rank; give files written by one model (task=extract writes fc and fc_att)"
                )
            for name in names:
                query, gallery = features[q_mod][name][q_idx], features[g_mod][name][g_idx]
                if rerank is None:  # computed a block of queries at a time while ranking
                    distmat = DistanceBlocks(query, gallery, distance)
                else:
                    distmat = re_ranking(query, gallery, **rerank)
                result = rank_metrics(
                    distmat,
                    q_set.ids[q_idx],
                    g_set.ids[g_idx],
                    q_set.cams[q_idx],
                    g_set.cams[g_idx],
                    rule=protocol.rule,
                )
                per_feature.setdefault(name, []).append(result.as_dict())
                cmcs.setdefault(name, []).append(result.cmc)
        for name in per_feature:
            mean_cmc = [
                float(sum(c[k] for c in cmcs[name]) / len(cmcs[name]))
                for k in range(len(cmcs[name][0]))
            ]
            records.append(
                ResultRecord(
                    protocol=protocol.name,
                    fingerprint=protocol.fingerprint(),
                    feature=name,
                    flags=dict(flags),
                    identity=dict(identity or {}),
                    trials=per_feature[name],
                    cmc=mean_cmc,
                )
            )
    return records


def evaluate(
    extractor: FeatureExtractor,
    split,
    protocols: List,
    flags: Optional[Dict] = None,
    identity: Optional[Dict] = None,
    rerank: Optional[Dict] = None,
    distance: str = "cosine",
) -> List[ResultRecord]:
    """Extract the split's features once and score every protocol.

    Reuse one `FeatureExtractor` per network: its compiled inference graphs are kept.
    """
    features = extractor.split_features(split)
    return evaluate_features(
        features,
        split,
        protocols,
        {**(flags or {}), **extractor.flags()},
        identity,
        rerank,
        distance,
    )
