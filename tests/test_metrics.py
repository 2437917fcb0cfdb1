"""Rank metrics against the reference's golden outputs and hand-built cases."""

import numpy as np
import pytest

from ddag.errors import EvaluationError
from ddag.evaluation.gallery_rules import RULES
from ddag.evaluation.metrics import cosine_distance, rank_metrics
from tests.conftest import load_json, reference_data


def _golden_cases():
    return load_json(reference_data("golden_metrics.json"))["cases"]


def test_golden_file_has_both_protocols():
    protocols = {case["protocol"] for case in _golden_cases()}
    assert protocols == {"sysu", "regdb"}


@pytest.mark.parametrize("index", range(9))
def test_reproduces_reference_outputs(index):
    cases = _golden_cases()
    if index >= len(cases):
        pytest.skip("fewer golden cases")
    case = cases[index]
    result = rank_metrics(
        np.array(case["distmat"]),
        np.array(case["query_ids"]),
        np.array(case["gallery_ids"]),
        np.array(case["query_cams"]) if "query_cams" in case else None,
        np.array(case["gallery_cams"]) if "gallery_cams" in case else None,
        max_rank=20,
        rule=RULES[case["protocol"]],
    )
    expected = case["expected"]
    np.testing.assert_allclose(result.cmc, expected["cmc"], atol=1e-6, rtol=0)
    assert result.mAP == pytest.approx(expected["mAP"], abs=1e-6)
    assert result.mINP == pytest.approx(expected["mINP"], abs=1e-6)


def test_perfect_ranking_scores_one_everywhere():
    gallery_ids = np.repeat(np.arange(25), 2)
    query_ids = np.arange(25)
    distmat = (gallery_ids[None, :] != query_ids[:, None]).astype(float) + 0.01 * np.arange(50)[
        None, :
    ] / 50
    for protocol in ("regdb", "sysu"):
        result = rank_metrics(
            distmat, query_ids, gallery_ids, np.full(25, 6), np.ones(50), rule=RULES[protocol]
        )
        np.testing.assert_allclose(result.cmc, 1.0)
        assert result.mAP == pytest.approx(1.0)
        assert result.mINP == pytest.approx(1.0)


def test_reversed_ranking_known_values():
    # One query, 20 gallery images, the single true match ranked last.
    gallery_ids = np.arange(20)
    distmat = -np.arange(20, dtype=float)[None, :]  # gallery 19 closest ... gallery 0 farthest
    result = rank_metrics(distmat, np.array([0]), gallery_ids, rule=RULES["regdb"])
    expected_cmc = np.zeros(20)
    expected_cmc[-1] = 1.0
    np.testing.assert_allclose(result.cmc, expected_cmc)
    assert result.mAP == pytest.approx(1 / 20)
    assert result.mINP == pytest.approx(1 / 20)


def test_hand_computed_average_precision_and_inp():
    # Matches at ranks 1 and 3 of 4: AP = (1/1 + 2/3) / 2, INP = 2 / 3.
    distmat = np.array([[0.1, 0.2, 0.3, 0.4]])
    result = rank_metrics(
        distmat, np.array([7]), np.array([7, 1, 7, 2]), max_rank=4, rule=RULES["regdb"]
    )
    assert result.mAP == pytest.approx((1 + 2 / 3) / 2)
    assert result.mINP == pytest.approx(2 / 3)
    np.testing.assert_allclose(result.cmc, [1, 1, 1, 1])


def test_ties_keep_gallery_order():
    # Equal distances: the stable sort keeps gallery order, so the match at index 1 is rank 2.
    distmat = np.zeros((1, 3))
    result = rank_metrics(
        distmat, np.array([5]), np.array([1, 5, 2]), max_rank=3, rule=RULES["regdb"]
    )
    np.testing.assert_allclose(result.cmc, [0, 1, 1])


def test_sysu_camera3_query_ignores_camera2_gallery():
    # The true match sits on cam 2: invisible to a cam-3 query, visible to a cam-6 query.
    gallery_ids = np.array([1, 2, 3])
    gallery_cams = np.array([2, 1, 4])
    distmat = np.array([[0.0, 0.5, 0.9], [0.0, 0.5, 0.9]])
    query_ids = np.array([1, 1])
    result = rank_metrics(
        distmat, query_ids, gallery_ids, np.array([3, 6]), gallery_cams, max_rank=3
    )
    # Only the cam-6 query has its identity in its gallery: it ranks first.
    assert result.num_valid_queries == 1
    np.testing.assert_allclose(result.cmc, [1, 1, 1])


def test_sysu_cmc_counts_distinct_identities():
    # Ranked ids: 9, 9, 9, 4 -> distinct ids 9, 4: the match is rank 2 (regdb would say rank 4).
    distmat = np.array([[0.1, 0.2, 0.3, 0.4]])
    args = (distmat, np.array([4]), np.array([9, 9, 9, 4]), np.array([6]), np.array([1, 1, 1, 1]))
    np.testing.assert_allclose(
        rank_metrics(*args, max_rank=4, rule=RULES["sysu"]).cmc, [0, 1, 1, 1]
    )
    np.testing.assert_allclose(
        rank_metrics(*args, max_rank=4, rule=RULES["regdb"]).cmc, [0, 0, 0, 1]
    )


def test_absent_query_identity_counts_in_sysu_cmc_numerator_only():
    # Query 2 is absent from the gallery: it is left out of mAP and of the CMC's divisor.
    distmat = np.array([[0.1, 0.2], [0.1, 0.2]])
    result = rank_metrics(
        distmat, np.array([1, 3]), np.array([1, 2]), np.array([6, 6]), np.array([1, 1]), max_rank=2
    )
    assert result.num_valid_queries == 1
    np.testing.assert_allclose(result.cmc, [1, 1])
    assert result.mAP == pytest.approx(1.0)


def test_short_gallery_pads_cmc_with_last_value():
    result = rank_metrics(
        np.array([[0.2, 0.1]]),
        np.array([1]),
        np.array([1, 2]),
        np.array([6]),
        np.array([1, 4]),
        max_rank=20,
    )
    assert len(result.cmc) == 20
    np.testing.assert_allclose(result.cmc, [0] + [1] * 19)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(distmat=np.zeros((2, 3)), query_ids=np.zeros(3), gallery_ids=np.zeros(3)),
            "query ids",
        ),
        (
            dict(distmat=np.zeros((2, 3)), query_ids=np.zeros(2), gallery_ids=np.zeros(2)),
            "gallery ids",
        ),
        (dict(distmat=np.zeros((2, 0)), query_ids=np.zeros(2), gallery_ids=np.zeros(0)), "empty"),
        (
            dict(distmat=np.full((1, 1), np.nan), query_ids=np.zeros(1), gallery_ids=np.zeros(1)),
            "NaN",
        ),
        (
            dict(distmat=np.zeros((1, 1)), query_ids=np.zeros(1), gallery_ids=np.ones(1)),
            "no query identity",
        ),
    ],
)
def test_bad_inputs_name_the_problem(kwargs, message):
    with pytest.raises(EvaluationError, match=message):
        rank_metrics(rule=RULES["regdb"], **kwargs)


def test_sysu_needs_cameras():
    with pytest.raises(EvaluationError, match="query_cams"):
        rank_metrics(np.zeros((1, 1)), np.zeros(1), np.zeros(1), rule=RULES["sysu"])


def test_cosine_distance_is_negative_normalised_inner_product():
    q = np.array([[3.0, 4.0]])
    g = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(cosine_distance(q, g), [[-0.6, -0.8]], rtol=1e-6)
    with pytest.raises(EvaluationError, match="NaN"):
        cosine_distance(np.array([[np.nan, 1.0]]), g)


def test_nearest_keeps_the_closest_rows_and_breaks_ties_in_gallery_order():
    from ddag.evaluation.metrics import nearest

    distances = np.array([[0.5, 0.1, 0.5, 0.3], [0.2, 0.2, 0.9, 0.0]])
    order, kept = nearest(distances, 3)
    np.testing.assert_array_equal(order, [[1, 3, 0], [3, 0, 1]])
    np.testing.assert_array_equal(kept, [[0.1, 0.3, 0.5], [0.0, 0.2, 0.2]])
    assert nearest(distances, 10)[0].shape == (2, 4)  # k larger than the gallery


def test_the_gallery_rule_is_an_object_of_the_protocol_not_a_name():
    from ddag.errors import ConfigError
    from ddag.evaluation.protocols import CrossModalProtocol, LLCMProtocol, SYSUProtocol

    with pytest.raises(EvaluationError, match="not a GalleryRule"):
        rank_metrics(np.zeros((1, 1)), np.zeros(1), np.zeros(1), rule="regdb")
    assert SYSUProtocol().rule is RULES["sysu"] and LLCMProtocol().rule is RULES["llcm"]
    assert CrossModalProtocol().fingerprint()["metric"] == "regdb"
    with pytest.raises(ConfigError, match="metric='sysyu'"):
        CrossModalProtocol(metric="sysyu")
