"""Inference API and the extract / search / export tasks, on a checkpoint the tests train."""

import json

import numpy as np
import pytest
from PIL import Image

from ddag.api import load_model
from ddag.config.run_config import run_config
from ddag.errors import ConfigError, DatasetError
from ddag.tasks import export, extract, search, train
from tests.builders import regdb_tree
from tests.conftest import TINY, compose_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke-trained checkpoint and a RegDB-layout image tree (ids in the folder names)."""
    root = tmp_path_factory.mktemp("inference")
    eager = ["runtime.mode=pynative", "runtime.jit_step=false"]
    train.run(run_config(compose_config(TINY + ["+debug=fast", *eager], output_dir=root / "run")))
    return root / "run" / "checkpoints" / "last.ckpt", regdb_tree(root / "RegDB")


def test_api_extracts_folders_lists_and_arrays(trained):
    checkpoint, tree = trained
    model = load_model(str(checkpoint), mode="pynative")
    assert (model.height, model.width) == (32, 16)  # read from the checkpoint's config
    fc, fc_att = model.extract(str(tree / "Thermal"), modality="thermal")
    assert fc.shape == fc_att.shape == (96, model.network.out_channels)
    np.testing.assert_allclose(np.linalg.norm(fc, axis=1), 1.0, rtol=1e-5)
    files = sorted(str(p) for p in (tree / "Thermal").rglob("*.bmp"))[:3]
    from_list, _ = model.extract(files, modality="thermal")
    np.testing.assert_allclose(from_list, fc[:3], atol=1e-6)
    arrays = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    np.testing.assert_allclose(model.extract(arrays, "thermal")[0], fc[:3], atol=1e-5)
    with pytest.raises(ConfigError, match="unknown modality"):
        model.extract(files, "infrared")


def test_api_search_ranks_the_other_modality(trained):
    checkpoint, tree = trained
    model = load_model(str(checkpoint), mode="pynative")
    ranking = model.search(str(tree / "Thermal"), str(tree / "Visible"), "thermal", top_k=5)
    assert ranking.indices.shape == (96, 5)
    assert np.all(np.diff(ranking.distances, axis=1) >= 0)
    entry = ranking.to_dict()["queries"][0]
    assert entry["query_id"] == 0 and len(entry["matches"]) == 5


def test_bad_folders_are_named(trained, tmp_path):
    checkpoint, _ = trained
    model = load_model(str(checkpoint), mode="pynative")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images in"):
        model.extract(str(tmp_path / "empty"), "visible")
    with pytest.raises(DatasetError, match="image folder not found"):
        model.extract(str(tmp_path / "absent"), "visible")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((32, 16, 3), np.uint8)).save(mixed / "a.png")
    (mixed / "notes.txt").write_text("not an image")  # skipped with a warning
    assert model.extract(str(mixed), "visible")[0].shape[0] == 1
    (mixed / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DatasetError, match="broken.jpg"):
        model.extract(str(mixed), "visible")


def test_extract_and_search_tasks_write_their_files(trained, tmp_path):
    checkpoint, tree = trained
    common = TINY + [f"task.checkpoint={checkpoint}", "runtime.mode=pynative"]
    cfg = compose_config(
        common + ["task=extract", "task.modality=thermal", f"task.images={tree / 'Thermal'}"],
        output_dir=tmp_path / "x",
    )
    extract.run(run_config(cfg))
    data = np.load(tmp_path / "x" / "features.npz")
    assert data["fc"].shape[0] == data["ids"].shape[0] == 96 and data["ids"][0] == 0
    cfg = compose_config(common + ["task=extract", "task.split=test"], output_dir=tmp_path / "y")
    written = extract.run(run_config(cfg))
    assert written["modalities"] == ["visible", "thermal"]
    both = np.load(tmp_path / "y" / "features.npz")
    assert sorted(set(both["modality"])) == ["thermal", "visible"]
    assert len(both["fc"]) == len(both["modality"]) == written["count"]
    for request, message in (
        ([f"task.images={tree / 'Thermal'}"], "needs task.modality=visible|thermal"),
        (["task.images=/nonexistent", "task.modality=thermal"], "no such folder"),
    ):
        cfg = compose_config(common + ["task=extract", *request], output_dir=tmp_path / "z")
        with pytest.raises(ConfigError, match=message):
            extract.run(run_config(cfg))
    cfg = compose_config(
        common
        + [
            "task=search",
            f"task.query={tree / 'Thermal'}",
            f"task.gallery={tree / 'Visible'}",
            "task.top_k=4",
        ],
        output_dir=tmp_path / "s",
    )
    search.run(run_config(cfg))
    ranking = json.loads((tmp_path / "s" / "ranking.json").read_text())
    assert len(ranking["queries"]) == 96 and len(ranking["queries"][0]["matches"]) == 4
    assert Image.open(tmp_path / "s" / "ranking.png").size[0] > 100


@pytest.mark.parametrize("fmt", ["MINDIR", "ONNX"])
def test_export_reloads_with_the_checkpoint_features(trained, tmp_path, fmt):
    checkpoint, _ = trained
    cfg = compose_config(
        TINY
        + [
            "task=export",
            f"task.checkpoint={checkpoint}",
            f"task.format={fmt}",
            "task.batch_size=2",
        ],
        output_dir=tmp_path,
    )
    result = export.run(run_config(cfg))
    assert result["path"].endswith(".mindir" if fmt == "MINDIR" else ".onnx")
    assert result["max_abs_diff/visible"] < 1e-5 and result["max_abs_diff/thermal"] < 1e-5
    if fmt == "ONNX":
        import onnxruntime

        session = onnxruntime.InferenceSession(result["path"])
        assert [i.name for i in session.get_inputs()] == ["images", "modality"]
        assert [o.name for o in session.get_outputs()] == ["fc", "fc_att"]
        assert not isinstance(session.get_inputs()[0].shape[0], int)  # a dynamic batch
        images = np.zeros((5, 3, 32, 16), np.float32)
        fc, fc_att = session.run(None, {"images": images, "modality": np.array([2], np.int32)})
        assert fc.shape[0] == 5 and fc_att.shape[0] == 5


def test_tasks_and_api_give_the_same_features_of_one_checkpoint(trained, tmp_path):
    # The config says 64x32 (loader=small); the checkpoint was trained at 32x16. Both routes
    # must use the checkpoint's size unless the command line sets another.
    checkpoint, tree = trained
    cfg = compose_config(
        [
            "logger=none",
            "task=extract",
            f"task.checkpoint={checkpoint}",
            "task.modality=thermal",
            f"task.images={tree / 'Thermal'}",
        ],
        output_dir=tmp_path,
    )
    assert (cfg.loader.height, cfg.loader.width) == (64, 32)
    extract.run(run_config(cfg))
    from_task = np.load(tmp_path / "features.npz")["fc_att"]
    from_api = load_model(str(checkpoint), mode="pynative").extract(
        str(tree / "Thermal"), "thermal"
    )
    np.testing.assert_allclose(from_task, from_api[1], atol=1e-5)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.full((2, 32, 16, 3), 40000, np.uint16), "uint16"),
        (np.zeros((2, 32, 16, 3), np.int64), "int64"),
        (np.full((2, 32, 16, 3), np.nan, np.float32), "NaN"),
        (np.full((2, 32, 16, 3), 2.0, np.float32), r"\[0, 1\]"),
        (np.zeros((0, 32, 16, 3), np.uint8), "no images"),
        (np.zeros((2, 32, 16), np.uint8), r"\(N, H, W, 3\)"),
    ],
)
def test_api_refuses_arrays_it_would_read_wrong(trained, images, message):
    model = load_model(str(trained[0]), mode="pynative")
    with pytest.raises(ConfigError, match=message):
        model.extract(images, "visible")


def test_api_reads_float_images_in_zero_one_like_uint8(trained):
    model = load_model(str(trained[0]), mode="pynative")
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 16, 3)).astype(np.uint8)
    as_uint8 = model.extract(pixels, "visible")
    as_float = model.extract(pixels.astype(np.float32) / 255.0, "visible")
    np.testing.assert_allclose(as_float[1], as_uint8[1], atol=1e-5)


def test_api_feature_names_are_exact(trained, tmp_path):
    model = load_model(str(trained[0]), mode="pynative")
    pixels = np.zeros((2, 32, 16, 3), np.uint8)
    with pytest.raises(ConfigError, match="feature='fc_att'.*FC, FC_att"):
        model.search(pixels, pixels, "thermal", feature="fc_att")
    with pytest.raises(ConfigError, match="top_k=0"):
        model.search(pixels, pixels, "thermal", top_k=0)


def test_ranking_image_draws_queries_across_identities_in_numeric_order():
    from ddag.api import Ranking
    from ddag.data.datasets.base import ArrayImageSet
    from ddag.reporting.plots import query_order, ranking_image, shown_queries

    pixels = np.full((4, 96, 48, 3), 128, np.uint8)
    query = ArrayImageSet(pixels, [10, 2, 2, 33], [3] * 4, ["q0", "q2", "q1", "q3"])
    gallery = ArrayImageSet(pixels, [2, 10, 33, 5], [1] * 4, ["g0", "g1", "g2", "g3"])
    indices = np.array([[1, 0], [0, 1], [0, 1], [2, 3]])
    distances = -np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    assert list(query_order(query.ids, query.names)) == [2, 1, 0, 3]  # id 2 (q1, q2), 10, 33
    assert list(shown_queries(query.ids, query.names, 3)) == [2, 0, 3]  # one per identity first
    assert list(shown_queries(query.ids, query.names, 9)) == [2, 0, 3, 1]  # then the second
    image = ranking_image(Ranking(query, gallery, indices, distances), max_queries=3)
    one_row = ranking_image(Ranking(query, gallery, indices, distances), max_queries=1)
    assert image.shape[1] == one_row.shape[1]  # query + 2 matches per row
    assert abs(image.shape[0] / one_row.shape[0] - 3) < 0.2  # three rows, as asked

    def colour_share(cell_row, cell_column, rgb):
        height, width = image.shape[0] / 3, image.shape[1] / 3
        y0, x0 = int(cell_row * height), int(cell_column * width)
        cell = image[y0 : int(y0 + height), x0 : int(x0 + width)].astype(int)
        return (np.abs(cell - rgb).sum(axis=2) < 40).mean()

    green, red = (0, 170, 0), (220, 0, 0)
    # Row 1 is query q1 (id 2): its first match has id 2 (green), its second id 10 (red).
    assert colour_share(0, 1, green) > 0.02 and colour_share(0, 1, red) == 0
    assert colour_share(0, 2, red) > 0.02 and colour_share(0, 2, green) == 0
    # Rows 2 and 3 are q0 (id 10) and q3 (id 33): each green first, red second.
    for row in (1, 2):
        assert colour_share(row, 1, green) > 0.02 and colour_share(row, 2, red) > 0.02
    assert colour_share(0, 0, green) == colour_share(0, 0, red) == 0  # the query: no frame


def test_a_ranking_records_similarities_right_or_wrong_and_each_querys_ap():
    from ddag.api import Ranking
    from ddag.data.datasets.base import ArrayImageSet
    from ddag.evaluation.metrics import known_average_precision, nearest, pairwise_distance

    rng = np.random.default_rng(0)
    q_ids, g_ids = np.array([1, 2, -1]), np.array([1, 2, 1, 3, 2])
    q, g = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    distances = pairwise_distance(q, g, "cosine")
    pixels = np.zeros((5, 8, 4, 3), np.uint8)
    query = ArrayImageSet(pixels[:3], q_ids, [3] * 3, ["a", "b", "c"])
    gallery = ArrayImageSet(pixels, g_ids, [1] * 5, list("vwxyz"))
    order, top = nearest(distances, 2)
    ap = known_average_precision(distances, q_ids, g_ids)
    record = Ranking(query, gallery, order, top, "cosine", ap).to_dict()
    assert record["score"] == "similarity (cosine; higher is closer)"
    first = record["queries"][0]["matches"][0]
    similarity = float(
        q[0] @ g[order[0, 0]] / np.linalg.norm(q[0]) / np.linalg.norm(g[order[0, 0]])
    )
    assert first["similarity"] == pytest.approx(similarity) and "distance" not in first
    assert first["correct"] == (g_ids[order[0, 0]] == 1)
    assert record["queries"][2]["average_precision"] is None  # its identity is unknown
    assert all(m["correct"] is None for m in record["queries"][2]["matches"])
    for row, identity in enumerate(q_ids[:2]):  # AP straight from the sorted gallery
        hits = g_ids[np.argsort(distances[row], kind="stable")] == identity
        direct = np.mean(np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1))
        assert record["queries"][row]["average_precision"] == pytest.approx(direct)
    euclidean = Ranking(query, gallery, order, top, "euclidean").to_dict()
    assert euclidean["score"] == "distance (euclidean; lower is closer)"
    assert euclidean["queries"][0]["matches"][0]["distance"] == pytest.approx(top[0, 0])
