"""task=visualize: every picture from a test checkpoint, and the numbers behind each one
checked against direct computations."""

import json

import mindspore as ms
import numpy as np
import pytest
from PIL import Image

from ddag.api import load_model
from ddag.config.run_config import run_config
from ddag.errors import ConfigError
from ddag.evaluation.results import ResultRecord
from ddag.models.attention.iwpa import WeightedPartAttention
from ddag.reporting import visual_stats as stats
from ddag.reporting.figures import cmc_figure
from ddag.tasks import train, visualize
from ddag.tasks.steps.data import build_dataset
from tests.bounded import run_bounded
from tests.conftest import TINY, compose_config

EAGER = ["runtime.mode=pynative", "runtime.jit_step=false"]
MODES = ("visible", "thermal")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    root = tmp_path_factory.mktemp("visualize")
    train.run(run_config(compose_config(TINY + ["+debug=fast", *EAGER], output_dir=root / "run")))
    checkpoint = root / "run" / "checkpoints" / "best.ckpt"
    overrides = TINY + ["task=visualize", f"task.checkpoint={checkpoint}", "task.max_ids=6", *EAGER]
    drawn = visualize.run(run_config(compose_config(overrides, output_dir=root / "viz")))
    return checkpoint, root / "viz", drawn


def _picture(path, min_width, min_height):
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[1] >= min_width and image.shape[0] >= min_height, image.shape
    assert image.std() > 10  # not blank
    return image


def test_every_picture_is_written_with_a_record_of_what_it_shows(pictures):
    _, out, drawn = pictures
    record = json.loads((out / "visualize.json").read_text())
    assert record["kinds"] == ["tsne", "distances", "attention", "actmap"]
    _picture(out / "tsne.png", 600, 500)
    _picture(out / "distances.png", 600, 400)
    _picture(out / "parts.png", 400, 300)
    _picture(out / "graph.png", 500, 500)
    strips = _picture(out / "actmap.png", 500, 300)
    assert strips.shape[0] == 3 * 360  # task.num_queries strips of one row each
    queries = drawn["actmap"]["queries"]
    assert len({q["query_id"] for q in queries}) == 3  # across identities, not three of one
    for query in queries:
        assert query["correct"] == [i == query["query_id"] for i in query["ids"]]
    assert record["tsne"]["identities"] == sorted(record["tsne"]["identities"])
    assert len(record["tsne"]["identities"]) == 6  # task.max_ids of the 6 test identities


def _features(checkpoint):
    """FC_att features of the synthetic test split straight from the API, both modalities."""
    model = load_model(str(checkpoint), mode="pynative")
    split = build_dataset(run_config(compose_config(TINY))).test_split()
    parts = [(model.extract(split.modality(m), m)[1], split.modality(m).ids, m) for m in MODES]
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([[p[2]] * len(p[1]) for p in parts]),
    )


def test_distance_numbers_are_those_of_the_features(pictures):
    checkpoint, _, drawn = pictures
    features, ids, modality = _features(checkpoint)
    chosen = np.array(drawn["tsne"]["identities"])
    mask = np.isin(ids, chosen)
    assert drawn["tsne"]["samples"] == int(mask.sum())
    f, i, m = features[mask], ids[mask], modality[mask]
    cross_pos = [
        1 - float(f[a] @ f[b])
        for a in range(len(f))
        for b in range(a + 1, len(f))
        if i[a] == i[b] and m[a] != m[b]
    ]
    cross_neg = [
        1 - float(f[a] @ f[b])
        for a in range(len(f))
        for b in range(a + 1, len(f))
        if i[a] != i[b] and m[a] != m[b]
    ]
    record = drawn["distances"]
    assert record["pairs"]["cross-modality positive"] == len(cross_pos)
    assert record["pairs"]["cross-modality negative"] == len(cross_neg)
    assert record["mean"]["cross-modality positive"] == pytest.approx(np.mean(cross_pos), abs=1e-5)
    edges = np.array(record["edges"])
    p = np.histogram(cross_pos, edges, density=True)[0]
    n = np.histogram(cross_neg, edges, density=True)[0]
    direct = float((np.minimum(p, n) * np.diff(edges)).sum())
    assert record["overlap"]["cross-modality"] == pytest.approx(direct, abs=1e-4)
    assert 0 < direct < 1


def test_attention_numbers_are_weights_and_stay_within_identities(pictures):
    _, _, drawn = pictures
    parts = np.array(drawn["attention"]["parts"]["weights"])
    assert parts.shape == (2 * len(drawn["attention"]["identities"]), 3)
    np.testing.assert_allclose(parts.sum(axis=1), 1, atol=1e-5)
    graph = np.array(drawn["attention"]["graph"]["attention"])
    labels = [s.split()[0] for s in drawn["attention"]["graph"]["samples"]]
    np.testing.assert_allclose(graph.sum(axis=1), 1, atol=1e-5)
    other = np.array([[a != b for b in labels] for a in labels])
    assert np.abs(graph[other]).max() < 1e-6  # the graph joins samples of one identity only


def test_part_weights_equal_a_direct_computation():
    ms.set_seed(0)
    module = WeightedPartAttention(in_channels=4, num_parts=3)
    module.gate.set_data(ms.Tensor(np.array([0.2, 0.5, 0.3], np.float32)))
    fmap = np.random.default_rng(0).normal(size=(2, 4, 7, 3)).astype(np.float32)
    got = module.part_weights(ms.Tensor(fmap)).asnumpy()
    parts = np.stack([fmap[:, :, a:b].mean(axis=(2, 3)) for a, b in module.part_bounds(7)], 1)

    def conv(layer, x):  # a 1x1 convolution of (N, p, C) part features
        w = layer.weight.asnumpy()[:, :, 0, 0]
        return x @ w.T + (layer.bias.asnumpy() if layer.bias is not None else 0)

    scores = conv(module.fc1, parts) @ conv(module.fc2, parts).transpose(0, 2, 1)
    attention = np.exp(scores - scores.max(-1, keepdims=True))
    attention /= attention.sum(-1, keepdims=True)
    gate = np.exp([0.2, 0.5, 0.3]) / np.exp([0.2, 0.5, 0.3]).sum()
    np.testing.assert_allclose(got, (attention * gate[None, :, None]).sum(1), atol=1e-5)
    assert module.part_bounds(7) == [(0, 3), (2, 5), (4, 7)]  # adaptive pooling's bins


def test_activation_map_is_the_scaled_channel_norm():
    fmap = np.zeros((3, 4, 2), np.float32)
    fmap[:, 1, 0] = [3, 4, 0]  # norm 5: the hottest cell
    fmap[0, 3, 1] = 1.0
    heat = stats.activation_map(fmap, 4, 2)
    assert heat[1, 0] == pytest.approx(1.0) and heat[0, 1] == pytest.approx(0.0)
    assert heat[3, 1] == pytest.approx(0.2)
    assert stats.activation_map(fmap, 8, 4).shape == (8, 4)


def test_overlap_and_identity_sampling_on_known_cases():
    edges = np.linspace(0, 2, 21)
    same = np.array([0.1, 0.5, 0.9, 1.3])

    def density(values):
        return np.histogram(values, edges, density=True)[0]

    assert stats.overlap(density(same), density(same), edges) == pytest.approx(1.0)
    assert stats.overlap(density([0.1, 0.2]), density([1.5, 1.8]), edges) == 0.0
    ids = np.repeat(np.arange(50), 2)
    chosen = stats.sample_identities(ids, 10, seed=1)
    assert len(chosen) == 10 and list(chosen) == sorted(chosen)
    assert list(stats.sample_identities(ids, 10, seed=1)) == list(chosen)
    assert list(stats.sample_identities(np.array([3, 1, 3]), 10)) == [1, 3]


def test_unknown_kinds_are_refused(pictures, tmp_path):
    checkpoint, _, _ = pictures
    overrides = TINY + ["task=visualize", f"task.checkpoint={checkpoint}", "task.kinds=[tnse]"]
    with pytest.raises(ConfigError, match="choose among"):
        visualize.run(run_config(compose_config(overrides, output_dir=tmp_path)))


def test_cmc_figure_has_one_curve_per_record():
    record = ResultRecord(
        protocol="regdb_v2t",
        fingerprint={},
        feature="FC",
        flags={},
        identity={},
        trials=[{"rank1": 0.5, "mAP": 0.4}],
        cmc=np.linspace(0.5, 1.0, 20).tolist(),
    )
    image = cmc_figure([record])
    assert image.shape == (440, 720, 3) and image.std() > 10


def test_a_test_evaluation_shows_its_features_and_a_rank_list_in_tensorboard(tmp_path):
    from tests.conftest import TINY as tiny

    overrides = [o for o in tiny if o != "logger=none"] + [
        "task.epochs=1",
        "task.max_steps_per_epoch=2",
        *EAGER,
    ]
    train.run(run_config(compose_config(overrides, output_dir=tmp_path)))
    board = tmp_path / "tensorboard"
    (folder,) = [p for p in board.glob("*/test%2fFC_att")]
    labels = (folder / "metadata.tsv").read_text().split("\n")
    labels = [line for line in labels if line]
    rows = (folder / "tensors.tsv").read_text().strip().split("\n")
    assert len(labels) == len(rows) == 6 * 2 * 4  # 6 test identities x 2 modalities x 4 images
    assert {line.split()[1] for line in labels} == {"visible", "thermal"}
    sprite = np.asarray(Image.open(folder / "sprite.png"))
    assert sprite.shape[0] == sprite.shape[1] and sprite.std() > 10
    events = b"".join(p.read_bytes() for p in board.glob("events.out.tfevents.*"))
    assert b"test/ranking" in events and b"test/cmc" in events
    assert "test%2fFC_att" in (board / "projector_config.pbtxt").read_text()


def test_features_task_extract_wrote_draw_the_same_distances(pictures, tmp_path):
    from ddag.tasks import extract

    checkpoint, _, drawn = pictures
    files = []
    for modality in ("visible", "thermal"):
        overrides = TINY + [
            "task=extract",
            f"task.checkpoint={checkpoint}",
            f"task.modality={modality}",
            f"task.output={modality}.npz",
            *EAGER,
        ]
        extract.run(run_config(compose_config(overrides, output_dir=tmp_path / "x")))
        files.append(str(tmp_path / "x" / f"{modality}.npz"))
    base = TINY + ["task=visualize", "task.max_ids=6"]
    listed = f"task.features=[{','.join(files)}]"
    kinds = "task.kinds=[tsne,distances]"
    from_files = visualize.run(run_config(compose_config(base + [listed, kinds], tmp_path / "v")))
    assert (tmp_path / "v" / "tsne.png").is_file() and (tmp_path / "v" / "distances.png").is_file()
    assert from_files["distances"]["pairs"] == drawn["distances"]["pairs"]
    for kind, value in drawn["distances"]["mean"].items():
        assert from_files["distances"]["mean"][kind] == pytest.approx(value, abs=1e-5)
    with pytest.raises(ConfigError, match="draw the network's attention"):
        visualize.run(run_config(compose_config(base + [listed], tmp_path / "w")))
    with pytest.raises(ConfigError, match="not both"):
        both = [listed, kinds, f"task.checkpoint={checkpoint}"]
        visualize.run(run_config(compose_config(base + both, tmp_path / "w")))
    with pytest.raises(ConfigError, match="needs task.checkpoint=PATH or task.features"):
        visualize.run(run_config(compose_config(base, tmp_path / "w")))


def test_features_with_one_array_as_task_score_accepts_them_draw_it(tmp_path, caplog):
    """An .npz with a single `features` array (what task=score accepts) draws that array; one
    identity says there are no negative pairs instead of an empty overlap."""
    rng = np.random.default_rng(0)

    def write(folder, ids):
        folder.mkdir()
        return [write_one(folder, modality, cams, ids) for modality, cams in CAMS]

    def write_one(folder, modality, cams, ids):
        np.savez(
            folder / f"{modality}.npz",
            features=rng.normal(size=(8, 6)).astype(np.float32),
            ids=ids,
            cams=np.tile(np.array(cams), 4),
            names=np.array([f"{modality}{i}" for i in range(8)]),
            modality=np.array(modality),
        )
        return str(folder / f"{modality}.npz")

    CAMS = (("visible", (1, 2)), ("thermal", (3, 6)))
    base = TINY + ["task=visualize", "task.kinds=[distances]", "task.max_ids=4"]
    files = write(tmp_path / "four", np.repeat(np.arange(4), 2))
    listed = f"task.features=[{','.join(files)}]"
    drawn = visualize.run(run_config(compose_config(base + [listed], tmp_path / "a")))
    assert drawn["distances"]["pairs"]["cross-modality positive"] == 16
    files = write(tmp_path / "one", np.zeros(8, np.int64))
    listed = f"task.features=[{','.join(files)}]"
    with caplog.at_level("INFO"):
        one = visualize.run(run_config(compose_config(base + [listed], tmp_path / "b")))
    assert one["distances"]["overlap"] == {} and "no overlap to report" in caplog.text


def test_pair_statistics_of_twelve_thousand_samples_stay_within_a_few_hundred_mb():
    # Every pair at once is a 1.1 GB distance matrix and as many booleans per mask.
    output, _ = run_bounded(
        """
        import numpy as np
        from ddag.reporting.visual_stats import pair_statistics
        count = 12_000
        ids, modality = np.arange(count) // 4, np.array(["visible", "thermal"] * (count // 2))
        features = np.random.default_rng(0).normal(size=(count, 8)).astype(np.float32)
        limit_memory(300)
        summary = pair_statistics(features, ids, modality)
        print("PAIRS", *summary["pairs"].values())
        """,
        timeout=300,
    )
    assert "PAIRS" in output, output[-3000:]
    cross_pos, cross_neg, same_pos, same_neg = map(int, output.split("PAIRS")[1].split()[:4])
    count = 12_000  # identities of four images, two per modality
    assert (cross_pos, same_pos) == (count // 4 * 4, count // 4 * 2)
    assert cross_pos + cross_neg == (count // 2) ** 2
    assert same_pos + same_neg == 2 * (count // 2) * (count // 2 - 1) // 2
