"""Protocol selection rules, features extracted once, flip averaging."""

import functools
import random

import mindspore as ms
import numpy as np
import pytest

from ddag.data.datasets.base import ArrayImageSet, Split
from ddag.data.loader import LoaderSettings
from ddag.evaluation.evaluator import evaluate
from ddag.evaluation.features import FeatureExtractor
from ddag.evaluation.protocols import CrossModalProtocol, SYSUProtocol
from ddag.models.attention.iwpa import WeightedPartAttention
from ddag.models.backbones.resnet import ResNet
from ddag.models.ddag import DDAG

ms.set_context(mode=ms.PYNATIVE_MODE)


def _sysu_like_split(rng):
    """Test identities 1..5: RGB cams 1, 2, 4, 5 (some missing), IR cams 3 and 6."""
    visible, thermal = [], []
    for identity in range(1, 6):
        for cam in (1, 2, 4, 5):
            if (identity + cam) % 4 == 0:
                continue  # this identity has no images in this camera
            for k in range(int(rng.integers(1, 5))):
                visible.append((identity, cam, f"cam{cam}/{identity:04d}/{k:04d}.jpg"))
        for cam in (3, 6):
            for k in range(2):
                thermal.append((identity, cam, f"cam{cam}/{identity:04d}/{k:04d}.jpg"))
    order = rng.permutation(len(visible))  # storage order must not matter
    visible = [visible[i] for i in order]

    def image_set(rows):
        ids, cams, names = zip(*rows)
        return ArrayImageSet(np.zeros((len(rows), 8, 4, 3), np.uint8), ids, cams, list(names))

    return Split(visible=image_set(visible), thermal=image_set(thermal))


def _reference_gallery(split, cameras, trial):
    """The reference's procedure written plainly: seed, ids ascending, cameras, sorted files."""
    random.seed(trial)
    chosen = []
    names = split.visible.names
    for identity in sorted(set(split.visible.ids.tolist())):
        for cam in cameras:
            files = sorted(
                n
                for n, i, c in zip(names, split.visible.ids, split.visible.cams)
                if i == identity and c == cam
            )
            if files:
                chosen.append(random.choice(files))
    return chosen


@pytest.mark.parametrize("search,cameras", [("all", (1, 2, 4, 5)), ("indoor", (1, 2))])
def test_sysu_gallery_follows_the_reference_draw(search, cameras):
    split = _sysu_like_split(np.random.default_rng(0))
    protocol = SYSUProtocol(search=search, trials=3)
    draws = []
    for trial in range(3):
        q_mod, query, g_mod, gallery = protocol.select(split, trial)
        assert (q_mod, g_mod) == ("thermal", "visible")
        assert len(query) == len(split.thermal)  # every IR image of cams 3 and 6
        names = [split.visible.names[i] for i in gallery]
        assert names == _reference_gallery(split, cameras, trial)
        pairs = list(zip(split.visible.ids[gallery], split.visible.cams[gallery]))
        assert len(pairs) == len(set(pairs))  # one image per identity and camera
        assert set(split.visible.cams[gallery]) <= set(cameras)
        draws.append(names)
    assert draws[0] != draws[1] or draws[1] != draws[2]
    np.testing.assert_array_equal(protocol.select(split, 1)[3], protocol.select(split, 1)[3])


def test_sysu_multi_shot_takes_up_to_ten_per_camera():
    split = _sysu_like_split(np.random.default_rng(1))
    _, _, _, gallery = SYSUProtocol(search="all", shots=10, trials=1).select(split, 0)
    expected = sum(
        min(10, int(np.sum((split.visible.ids == i) & (split.visible.cams == c))))
        for i in range(1, 6)
        for c in (1, 2, 4, 5)
    )
    assert len(gallery) == expected == len(set(gallery.tolist()))


def test_cross_modal_protocol_uses_every_image():
    split = _sysu_like_split(np.random.default_rng(2))
    q_mod, query, g_mod, gallery = CrossModalProtocol("thermal", "visible").select(split, 0)
    assert (q_mod, g_mod) == ("thermal", "visible")
    assert len(query) == len(split.thermal) and len(gallery) == len(split.visible)
    assert CrossModalProtocol("visible", "thermal").name == "v2t"


def _network():
    ms.set_seed(0)
    return DDAG(
        ResNet((1, 1, 1, 1), (4, 4, 8, 8), 8),
        3,
        part_attention=functools.partial(WeightedPartAttention, num_parts=2),
    )


def _image_split(num_ids=4, per_id=5):
    rng = np.random.default_rng(3)

    def image_set(cam):
        n = num_ids * per_id
        images = rng.integers(0, 255, (n, 32, 16, 3), dtype=np.uint8)
        ids = np.repeat(np.arange(num_ids), per_id)
        return ArrayImageSet(images, ids, [cam] * n, [f"{cam}/{i}" for i in range(n)])

    return Split(visible=image_set(1), thermal=image_set(2))


def test_features_are_extracted_once_for_all_protocols_and_trials():
    settings = LoaderSettings(height=32, width=16, test_batch_size=8, num_workers=1)
    extractor = FeatureExtractor(_network(), settings)
    split = _image_split()
    protocols = [CrossModalProtocol("visible", "thermal"), CrossModalProtocol("thermal", "visible")]
    protocols[0].trials = 3  # several trials reuse the same features too
    records = evaluate(extractor, split, protocols)
    assert extractor.forward_passes == 2 * int(np.ceil(20 / 8))
    assert [(r.protocol, r.feature, len(r.trials)) for r in records] == [
        ("v2t", "FC", 3),
        ("v2t", "FC_att", 3),
        ("t2v", "FC", 1),
        ("t2v", "FC_att", 1),
    ]
    assert records[0].flags == {
        "flip": False,
        "backend": "mindspore",
        "rerank": False,
        "distance": "cosine",
    }


def test_flip_averages_an_image_and_its_mirror():
    settings = LoaderSettings(height=32, width=16, test_batch_size=8, num_workers=1)
    network = _network()
    split = _image_split()
    plain = FeatureExtractor(network, settings)
    flipped = FeatureExtractor(network, settings, flip=True)
    fc, _ = plain(split.visible, "visible")
    fc_flip, _ = flipped(split.visible, "visible")
    assert flipped.forward_passes == 2 * plain.forward_passes
    np.testing.assert_allclose(np.linalg.norm(fc_flip, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(fc, fc_flip)
    # A left-right symmetric image gives the same feature with or without flip averaging.
    symmetric = split.visible.images.copy()
    symmetric[:, :, 8:] = symmetric[:, :, :8][:, :, ::-1]
    sym_set = ArrayImageSet(symmetric, split.visible.ids, split.visible.cams, split.visible.names)
    np.testing.assert_allclose(
        plain(sym_set, "visible")[0], flipped(sym_set, "visible")[0], atol=1e-5
    )


def _plain_re_ranking(q, g, k1=20, k2=6, lam=0.3):
    """The CVPR 2017 algorithm written with loops, to check the vectorised one."""
    f = np.concatenate([q, g]).astype(np.float32)
    nq, n = len(q), len(q) + len(g)
    d = np.maximum(2 - 2 * f @ f.T, 0)
    d = (d / d.max(axis=0, keepdims=True)).T
    rank = np.argsort(d, axis=1, kind="stable")
    weights = np.zeros_like(d)
    half = int(np.around(k1 / 2))
    for i in range(n):
        forward = rank[i, : k1 + 1]
        reciprocal = forward[np.where(rank[forward, : k1 + 1] == i)[0]]
        expansion = reciprocal
        for c in reciprocal:
            c_forward = rank[c, : half + 1]
            c_reciprocal = c_forward[np.where(rank[c_forward, : half + 1] == c)[0]]
            if len(np.intersect1d(c_reciprocal, reciprocal)) > 2 / 3 * len(c_reciprocal):
                expansion = np.append(expansion, c_reciprocal)
        expansion = np.unique(expansion)
        w = np.exp(-d[i, expansion])
        weights[i, expansion] = w / w.sum()
    weights = np.stack([weights[rank[i, :k2]].mean(0) for i in range(n)])
    jaccard = np.zeros((nq, n - nq))
    for i in range(nq):
        shared = np.minimum(weights[i][None], weights[nq:]).sum(1)
        jaccard[i] = 1 - shared / (2 - shared)
    return jaccard * (1 - lam) + d[:nq, nq:] * lam


def test_re_ranking_matches_the_plain_algorithm_and_helps_on_clusters():
    from ddag.evaluation.gallery_rules import RULES
    from ddag.evaluation.metrics import cosine_distance, rank_metrics
    from ddag.evaluation.rerank import re_ranking

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 16))

    def features(n):
        ids = rng.integers(0, 10, n)
        x = centres[ids] + 0.8 * rng.normal(size=(n, 16))
        return x / np.linalg.norm(x, axis=1, keepdims=True), ids

    (q, q_ids), (g, g_ids) = features(40), features(80)
    reranked = re_ranking(q, g)
    np.testing.assert_allclose(reranked, _plain_re_ranking(q, g), atol=1e-5)
    plain = rank_metrics(cosine_distance(q, g), q_ids, g_ids, rule=RULES["regdb"])
    better = rank_metrics(reranked, q_ids, g_ids, rule=RULES["regdb"])
    assert better.mAP > plain.mAP


def test_re_ranking_a_set_larger_than_memory_is_refused_before_allocating(tmp_path):
    from tests.bounded import refused, run_bounded

    output, seconds = run_bounded(
        """
        import numpy as np
        from ddag.errors import EvaluationError
        from ddag.evaluation.rerank import re_ranking
        features = np.ones((20_000, 4), np.float32) / 2  # 20,000^2 pairs: about 15 GiB
        limit_memory(400)
        try:
            re_ranking(features[:5_000], features[5_000:])
        except EvaluationError as err:
            print("REFUSED EvaluationError", err)
        """
    )
    refused(output, seconds, "EvaluationError", limit=30)
    assert "re-ranking 5000 queries against 15000 gallery images needs about 14.9 GiB" in output


def test_rerank_setting_re_ranks_every_protocol():
    from ddag.evaluation.evaluator import evaluate_features
    from ddag.evaluation.gallery_rules import RULES
    from ddag.evaluation.metrics import rank_metrics
    from ddag.evaluation.rerank import re_ranking

    rng = np.random.default_rng(3)
    split = _image_split()
    centres = rng.normal(size=(10, 16))

    def features(image_set):
        x = centres[image_set.ids % 10] + 0.9 * rng.normal(size=(len(image_set), 16))
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        return {"FC": x, "FC_att": x}

    feats = {"visible": features(split.visible), "thermal": features(split.thermal)}
    protocols = [CrossModalProtocol("visible", "thermal")]
    settings = {"k1": 6, "k2": 3, "lambda_value": 0.3}
    plain = evaluate_features(feats, split, protocols)[0]
    reranked = evaluate_features(feats, split, protocols, rerank=settings)[0]
    assert reranked.flags["rerank"] and reranked.flags["transductive"]
    assert reranked.trials[0] != plain.trials[0]
    expected = rank_metrics(
        re_ranking(feats["visible"]["FC"], feats["thermal"]["FC"], **settings),
        split.visible.ids,
        split.thermal.ids,
        rule=RULES["regdb"],
    )
    assert reranked.trials[0] == pytest.approx(expected.as_dict())


def test_non_finite_features_name_the_input_size_and_what_to_change():
    from ddag.errors import EvaluationError

    settings = LoaderSettings(height=32, width=16, test_batch_size=8, num_workers=1)
    network = _network()
    weight = network.bottleneck.gamma
    weight.set_data(ms.Tensor(np.full(weight.shape, np.nan, np.float32)))
    extractor = FeatureExtractor(network, settings)
    with pytest.raises(EvaluationError, match=r"20 of 20 visible images at the 32x16 input"):
        extractor(_image_split().visible, "visible")
    weight.set_data(ms.Tensor(np.ones(weight.shape, np.float32)))  # FC is finite again
    gate = network.part_attention.gate
    gate.set_data(ms.Tensor(np.full(gate.shape, np.nan, np.float32)))  # FC_att is not
    with pytest.raises(EvaluationError, match=r"20 of 20 visible images"):
        FeatureExtractor(network, settings)(_image_split().visible, "visible")
