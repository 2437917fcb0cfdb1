"""LLCM: the reader, the doctor, and the protocols against DEEN's own evaluation code.

tests/data/golden_llcm.json holds a synthetic LLCM test tree (file names), features per file,
and what ZYK100/LLCM `DEEN/data_manager.py` (process_query_llcm, process_gallery_llcm) and
`DEEN/eval_metrics.py` (eval_llcm) gave for trials 0-9 in both of test.py's directions.
"""

import json

import numpy as np
import pytest

from ddag.config.run_config import run_config
from ddag.data.datasets.llcm import LLCMDataset
from ddag.data.synthetic_disk import write_llcm
from ddag.errors import DatasetError
from ddag.evaluation.evaluator import evaluate_features
from ddag.evaluation.protocols import LLCMProtocol
from ddag.tasks import train
from ddag.tasks.steps.data import build_protocols
from tests.builders import small_synthetic
from tests.conftest import DATA, TINY, compose_config

GOLDEN = json.loads((DATA / "golden_llcm.json").read_text())


@pytest.fixture(scope="module")
def golden_tree(tmp_path_factory):
    """The golden's test tree (empty image files: only names are read) and its split."""
    root = tmp_path_factory.mktemp("llcm") / "LLCM"
    for name in GOLDEN["files"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    (root / "idx").mkdir()
    (root / "idx" / "test_id.txt").write_text(",".join(map(str, GOLDEN["test_ids"])) + "\n")
    split = LLCMDataset(str(root)).test_split()
    return root, split


def _relative(root, names):
    return [str(type(root)(n).relative_to(root)) for n in names]


@pytest.mark.parametrize("direction", ["t2v", "v2t"])
def test_protocols_select_what_deen_selects_and_score_what_eval_llcm_scores(direction, golden_tree):
    root, split = golden_tree
    files = GOLDEN["files"]
    vectors = dict(zip(files, np.array(GOLDEN["features"])))
    features = {
        m: {"FC": np.stack([vectors[n] for n in _relative(root, split.modality(m).names)])}
        for m in ("visible", "thermal")
    }
    protocol = LLCMProtocol(direction)
    assert protocol.check(split) == []
    expected = GOLDEN["directions"][direction]
    for trial, golden in enumerate(expected):
        rows_modality, rows, columns_modality, columns = protocol.select(split, trial)
        assert (rows_modality, columns_modality) == ("thermal", "visible")
        assert _relative(root, [split.thermal.names[i] for i in rows]) == [
            files[i] for i in golden["rows"]
        ]
        assert _relative(root, [split.visible.names[i] for i in columns]) == [
            files[i] for i in golden["columns"]
        ]
    (record,) = evaluate_features(features, split, [protocol])
    assert record.protocol == f"llcm_{direction}" and len(record.trials) == 10
    for got, golden in zip(record.trials, expected):
        for rank in (1, 5, 10, 20):
            assert got[f"rank{rank}"] == pytest.approx(golden["cmc"][rank - 1], abs=1e-6)
        assert got["mAP"] == pytest.approx(golden["mAP"], abs=1e-9)
        assert got["mINP"] == pytest.approx(golden["mINP"], abs=1e-9)


def test_identities_outside_the_test_list_are_not_read(golden_tree):
    _, split = golden_tree
    assert 99 not in set(split.visible.ids) | set(split.thermal.ids)
    assert set(split.visible.ids) == set(GOLDEN["test_ids"])


@pytest.fixture
def llcm_tree(tmp_path):
    return write_llcm(small_synthetic(), tmp_path / "LLCM")


def test_reader_relabels_both_modalities_with_one_mapping_and_the_doctor_passes(llcm_tree):
    dataset = LLCMDataset(str(llcm_tree), height=32, width=16)
    report = dataset.check(decode=True)
    assert not report.errors, report.text()
    train_split = dataset.train_split()
    assert (
        sorted(set(train_split.visible.ids))
        == list(range(8))
        == sorted(set(train_split.thermal.ids))
    )
    assert dataset.num_train_ids == 8
    assert set(train_split.thermal.cams) <= set(LLCMProtocol.THERMAL_CAMERAS)
    test = dataset.test_split()
    assert set(test.visible.cams) <= set(LLCMProtocol.VISIBLE_CAMERAS)
    assert test.visible.load(0).shape == (32, 16, 3)


def test_the_doctor_names_unmatched_training_identities_and_empty_test_identities(llcm_tree):
    lines = (llcm_tree / "idx" / "train_nir.txt").read_text().splitlines()
    (llcm_tree / "idx" / "train_nir.txt").write_text(
        "\n".join(line for line in lines if not line.endswith(" 3")) + "\n"
    )
    report = LLCMDataset(str(llcm_tree)).check()
    assert any("label 3 (visible only)" in f.items for f in report.errors), report.text()
    with pytest.raises(DatasetError, match="list different identities"):
        LLCMDataset(str(llcm_tree)).train_split()
    (llcm_tree / "idx" / "train_nir.txt").write_text("\n".join(lines) + "\n")
    for folder in (llcm_tree / "test_nir").glob("cam*/0010"):
        for image in folder.iterdir():
            image.unlink()
        folder.rmdir()
    report = LLCMDataset(str(llcm_tree)).check()
    assert any("have no thermal image" in f.problem and "0010" in f.items for f in report.errors)


def test_an_infrared_index_copied_from_the_visible_one_is_refused(llcm_tree):
    index = llcm_tree / "idx"
    (index / "train_nir.txt").write_text((index / "train_vis.txt").read_text())
    report = LLCMDataset(str(llcm_tree)).check()
    assert any(
        "are listed in both idx/train_vis.txt and idx/train_nir.txt" in f.problem
        for f in report.errors
    ), report.text()
    with pytest.raises(DatasetError, match=r"image\(s\) for both modalities .* a copy of the"):
        LLCMDataset(str(llcm_tree)).train_split()


def test_a_smoke_run_trains_on_an_llcm_tree_and_reports_both_protocols(llcm_tree, tmp_path):
    overrides = [o for o in TINY if not o.startswith("dataset.")] + [
        "+debug=fast",
        "runtime.mode=pynative",
        "runtime.jit_step=false",
        "dataset=llcm",
        f"dataset.root={llcm_tree}",
        "task.selection=last",
    ]
    cfg = compose_config(overrides, output_dir=tmp_path / "run")
    protocols = build_protocols(run_config(cfg))
    assert [p.name for p in protocols] == ["llcm_t2v", "llcm_v2t"]
    train.run(run_config(cfg))
    records = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {(r["protocol"], len(r["trials"])) for r in records} == {
        ("llcm_t2v", 10),
        ("llcm_v2t", 10),
    }
    assert all(r["fingerprint"]["protocol"] == "llcm" for r in records)
