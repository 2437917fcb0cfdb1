"""Real dataset readers on miniature on-disk trees: counts, relabelling, doctor, preparation."""

import numpy as np
import pytest
from PIL import Image

from ddag.config.run_config import run_config
from ddag.data.datasets.base import read_rgb
from ddag.data.datasets.regdb import RegDBDataset
from ddag.data.datasets.sysu import SYSUDataset, prepared_paths
from ddag.data.prepare import prepare_sysu
from ddag.errors import DatasetError
from ddag.evaluation.protocols import SYSUProtocol
from ddag.tasks import train
from tests.builders import regdb_tree, sysu_tree
from tests.conftest import compose_config


@pytest.fixture
def regdb_root(tmp_path):
    return regdb_tree(tmp_path / "RegDB")


@pytest.fixture
def sysu_root(tmp_path):
    return sysu_tree(tmp_path / "SYSU-MM01")


def test_regdb_trial_split_and_relabelling(regdb_root):
    dataset = RegDBDataset(str(regdb_root), trial=3, height=32, width=16)
    train, test = dataset.train_split(), dataset.test_split()
    assert sorted(set(train.visible.ids)) == list(range(6)) == sorted(set(train.thermal.ids))
    assert dataset.num_train_ids == 6
    assert len(train.visible) == len(train.thermal) == 48
    test_ids = set(test.visible.ids)
    assert len(test_ids) == 6 and test_ids == set(test.thermal.ids)
    assert set(train.visible.cams) == {1} and set(train.thermal.cams) == {2}
    assert train.visible.load(0).shape == (32, 16, 3)
    # Another trial is another split of the same identities.
    other = RegDBDataset(str(regdb_root), trial=4, height=32, width=16).test_split()
    assert set(other.visible.ids) != test_ids


def test_sysu_identities_cameras_and_val_option(sysu_root):
    dataset = SYSUDataset(str(sysu_root), height=32, width=16)
    train = dataset.train_split()
    assert dataset.num_train_ids == 8  # train + val identities, as the reference trains
    assert sorted(set(train.visible.ids)) == list(range(8))
    assert set(train.visible.cams) == {1, 2, 4, 5} and set(train.thermal.cams) == {3, 6}
    assert len(train.visible) == len(train.thermal) == 64
    test = dataset.test_split()
    assert sorted(set(test.visible.ids)) == [9, 10, 11, 12]
    q_mod, query, g_mod, gallery = SYSUProtocol("all", trials=1).select(test, 0)
    assert len(query) == 32 and len(gallery) == 16  # 4 ids x 4 RGB cameras, one image each
    _, _, _, indoor = SYSUProtocol("indoor", trials=1).select(test, 0)
    assert len(indoor) == 8
    honest = SYSUDataset(str(sysu_root), height=32, width=16, merge_val=False)
    assert honest.num_train_ids == 6 and sorted(set(honest.val_split().visible.ids)) == [7, 8]
    assert dataset.val_split() is None


def test_sysu_preparation_round_trip(sysu_root):
    dataset = SYSUDataset(str(sysu_root), height=32, width=16)
    decoded_visible, decoded_thermal = dataset.decoded_train_sets()
    written = prepare_sysu(dataset, chunk=20)
    assert set(written) == {"rgb_img", "rgb_label", "ir_img", "ir_label"}
    assert not (sysu_root / ".ddag_prepare").exists()
    prepared = SYSUDataset(str(sysu_root), height=32, width=16).train_split()
    assert prepared.visible.names[0].startswith("train_rgb_resized_img.npy")
    for decoded, packed in (
        (decoded_visible, prepared.visible),
        (decoded_thermal, prepared.thermal),
    ):
        np.testing.assert_array_equal(packed.ids, decoded.ids)
        for i in (0, 17, len(decoded) - 1):
            np.testing.assert_array_equal(packed.load(i), decoded.load(i))
    # Prepared at another size: the reader falls back to decoding the JPEGs.
    other = SYSUDataset(str(sysu_root), height=64, width=32).train_split()
    assert other.visible.names[0].endswith(".jpg")


def test_preparation_resumes_from_finished_chunks(sysu_root, monkeypatch):
    dataset = SYSUDataset(str(sysu_root), height=32, width=16)
    import ddag.data.prepare as prepare

    calls = {"n": 0}
    original = prepare.save_atomic

    def fail_on_third_chunk(path, array):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        original(path, array)

    monkeypatch.setattr(prepare, "save_atomic", fail_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        prepare_sysu(dataset, chunk=20)
    done = sorted(p.name for p in (sysu_root / ".ddag_prepare" / "32x16").iterdir())
    assert done == ["rgb_0000000.npy", "rgb_0000020.npy"]
    assert not any(p.is_file() for p in prepared_paths(sysu_root, True).values())
    monkeypatch.setattr(prepare, "save_atomic", original)
    prepare_sysu(dataset, chunk=20)
    assert all(p.is_file() for p in prepared_paths(sysu_root, True).values())


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((8, 4), 77, np.uint8), mode="L").save(gray)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((8, 4, 4), 200, np.uint8), mode="RGBA").save(rgba)
    for path in (gray, rgba):
        image = read_rgb(str(path), size=(16, 32))
        assert image.shape == (32, 16, 3) and image.dtype == np.uint8
    assert np.all(read_rgb(str(gray)) == 77)


def test_missing_root_and_bad_trial_are_named(tmp_path, regdb_root):
    with pytest.raises(DatasetError, match="RegDB root not found.*licence"):
        RegDBDataset(str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="SYSU-MM01 root not found"):
        SYSUDataset(str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="trials are 1..10"):
        RegDBDataset(str(regdb_root), trial=11)


def test_doctor_on_a_healthy_tree_only_warns_about_counts(regdb_root, sysu_root):
    for dataset in (RegDBDataset(str(regdb_root), trial=1), SYSUDataset(str(sysu_root))):
        report = dataset.check(decode=True)
        assert not report.errors
        assert all("published" in f.problem or "without" in f.problem for f in report.findings)


def test_sysu_start_up_check_and_splits_walk_the_tree_once(sysu_root, monkeypatch):
    import ddag.data.datasets.sysu as sysu

    walks = []
    real = sysu.list_images
    monkeypatch.setattr(sysu, "list_images", lambda *a: walks.append(a[2]) or real(*a))
    dataset = SYSUDataset(str(sysu_root), height=32, width=16, use_prepared=False)
    dataset.check()
    assert len(walks) == 4  # training and test identities x visible and thermal cameras
    train, test = dataset.train_split(), dataset.test_split()
    assert len(walks) == 4
    assert len(train.visible) == 64 and sorted(set(test.visible.ids)) == [9, 10, 11, 12]


def test_doctor_names_missing_index_files(regdb_root):
    (regdb_root / "idx" / "test_thermal_2.txt").unlink()
    report = RegDBDataset(str(regdb_root), trial=2).check()
    assert "idx/test_thermal_2.txt" in report.text() and report.errors
    # Another trial still works; the missing file of trial 2 is only a warning there.
    assert not RegDBDataset(str(regdb_root), trial=1).check().errors
    with pytest.raises(DatasetError, match="index file missing") as err:
        RegDBDataset(str(regdb_root), trial=2).test_split()
    # The rest of the dataset is there: the fix is that one file, not requesting RegDB.
    assert "Restore test_thermal_2.txt from the RegDB release" in str(err.value)
    assert "requested from its authors" not in str(err.value)


def test_doctor_names_missing_truncated_and_non_image_files(regdb_root):
    (regdb_root / "Visible" / "0" / "v_0000_03.bmp").unlink()
    truncated = regdb_root / "Thermal" / "1" / "t_0001_02.bmp"
    truncated.write_bytes(truncated.read_bytes()[:100])
    (regdb_root / "Visible" / "2" / "v_0002_00.bmp").write_text("not an image")
    quick = RegDBDataset(str(regdb_root), trial=1).check(decode=False)
    full = RegDBDataset(str(regdb_root), trial=1).check(decode=True).text()
    assert "v_0000_03.bmp" in quick.text() and "do not exist" in quick.text()
    assert "cannot be decoded" in full and "t_0001_02.bmp" in full and "v_0002_00.bmp" in full
    with pytest.raises(DatasetError, match="cannot read image"):
        read_rgb(str(truncated))


def test_doctor_names_identities_without_images(sysu_root):
    for cam in (3, 6):
        for path in (sysu_root / f"cam{cam}" / "0002").iterdir():
            path.unlink()
    report = SYSUDataset(str(sysu_root)).check()
    assert any("no thermal images" in f.problem and "0002" in f.items for f in report.errors)
    with pytest.raises(DatasetError, match="0002"):
        report.raise_on_errors()


def test_doctor_names_missing_split_files_and_folders(sysu_root):
    (sysu_root / "exp" / "val_id.txt").unlink()
    assert "exp/val_id.txt" in SYSUDataset(str(sysu_root)).check().text()
    (sysu_root / "cam6").rename(sysu_root / "cam6_moved")
    assert "missing folder(s): cam6" in SYSUDataset(str(sysu_root)).check().text()


@pytest.mark.parametrize("name,builder", [("regdb", regdb_tree), ("sysu", sysu_tree)])
def test_short_training_run_on_each_miniature_tree(name, builder, tmp_path):
    root = builder(tmp_path / name)
    cfg = compose_config(
        [
            f"dataset={name}",
            f"dataset.root={root}",
            "+debug=fast",
            "loader.test_batch_size=16",
            "runtime.mode=pynative",  # no compilation: two steps are cheaper run eagerly
            "runtime.jit_step=false",
        ],
        output_dir=tmp_path / "run",
    )
    summary = train.run(run_config(cfg))
    expected = ("v2t", "t2v") if name == "regdb" else ("sysu_all", "sysu_indoor")
    assert {key.split("/")[0] for key in summary} == set(expected)
    assert (tmp_path / "run" / "results.json").is_file()


def test_training_refuses_a_broken_root_at_start_up(tmp_path):
    root = regdb_tree(tmp_path / "RegDB")
    (root / "Thermal" / "3" / "t_0003_01.bmp").unlink()
    cfg = compose_config(
        ["dataset=regdb", f"dataset.root={root}", "+debug=fast"], output_dir=tmp_path / "run"
    )
    with pytest.raises(DatasetError, match="t_0003_01.bmp"):
        train.run(run_config(cfg))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_corrupt_image_met_during_training_is_named(tmp_path):
    root = regdb_tree(tmp_path / "RegDB")
    for path in (root / "Visible").rglob("*.bmp"):  # every visible image: the first batch hits one
        path.write_bytes(path.read_bytes()[:60])
    cfg = compose_config(
        ["dataset=regdb", f"dataset.root={root}", "+debug=fast"], output_dir=tmp_path / "run"
    )
    with pytest.raises(DatasetError, match=r"cannot read image .*\.bmp"):
        train.run(run_config(cfg))


def _rewrite_index(root, name, edit):
    path = root / "idx" / name
    path.write_text(edit(path.read_text()))


def test_regdb_training_labels_mean_one_person_in_both_modalities(regdb_root):
    # Drop one training identity from the thermal index: the visible labels would shift by one
    # against the thermal ones if each modality were relabelled on its own.
    first_label = (regdb_root / "idx" / "train_thermal_1.txt").read_text().split()[1]
    _rewrite_index(
        regdb_root,
        "train_thermal_1.txt",
        lambda text: "\n".join(
            line for line in text.splitlines() if line.split()[1] != first_label
        ),
    )
    dataset = RegDBDataset(str(regdb_root), trial=1, height=32, width=16)
    with pytest.raises(DatasetError, match="different identities"):
        dataset.train_split()
    report = RegDBDataset(str(regdb_root), trial=1, height=32, width=16).check()
    assert any("different identities" in f.problem for f in report.errors)
    assert f"label {first_label} (visible only)" in report.text()


def test_regdb_index_files_listing_one_image_for_both_modalities_are_refused(regdb_root):
    visible = (regdb_root / "idx" / "train_visible_1.txt").read_text()
    _rewrite_index(regdb_root, "train_thermal_1.txt", lambda _: visible)
    dataset = RegDBDataset(str(regdb_root), trial=1, height=32, width=16)
    with pytest.raises(DatasetError, match="for both modalities"):
        dataset.train_split()
    report = RegDBDataset(str(regdb_root), trial=1, height=32, width=16).check()
    assert any("listed in both the visible and the thermal" in f.problem for f in report.errors)


@pytest.mark.parametrize("bad_path", ["../../etc/hostname", "/etc/hostname", "Visible/../../x.bmp"])
def test_regdb_index_paths_cannot_leave_the_root(regdb_root, bad_path):
    _rewrite_index(regdb_root, "test_visible_1.txt", lambda text: f"{bad_path} 3\n" + text)
    with pytest.raises(DatasetError, match="outside the dataset root"):
        RegDBDataset(str(regdb_root), trial=1).test_split()


@pytest.mark.parametrize("label", ["\u00b2", "12345678901", "3.5"])
def test_index_labels_are_plain_ascii_numbers(regdb_root, label):
    _rewrite_index(
        regdb_root, "test_visible_1.txt", lambda text: f"Visible/1/a.bmp {label}\n" + text
    )
    with pytest.raises(DatasetError, match="expected '<relative path> <label>'"):
        RegDBDataset(str(regdb_root), trial=1).test_split()


def test_split_id_files_are_bounded_and_plain_numbers(sysu_root):
    path = sysu_root / "exp" / "test_id.txt"
    path.write_text("1,\u00b2,3")
    with pytest.raises(DatasetError, match="identity numbers.*'\u00b2'"):
        SYSUDataset(str(sysu_root)).test_split()
    path.write_text(",".join(str(i) for i in range(1, 100_002)))
    with pytest.raises(DatasetError, match="lists 100001 identities"):
        SYSUDataset(str(sysu_root)).test_split()


def test_index_and_split_files_that_are_not_text_are_named(regdb_root, sysu_root):
    (regdb_root / "idx" / "test_thermal_1.txt").write_bytes(b"Thermal/1/a.bmp 1\n\xff\xfe\x00")
    with pytest.raises(DatasetError, match="not a UTF-8 text file"):
        RegDBDataset(str(regdb_root), trial=1).test_split()
    (sysu_root / "exp" / "test_id.txt").write_bytes(b"\xff\xfe1,2")
    with pytest.raises(DatasetError, match="not a UTF-8 text file"):
        SYSUDataset(str(sysu_root)).test_split()


def test_sysu_reads_only_image_files(sysu_root):
    before = SYSUDataset(str(sysu_root), height=32, width=16).test_split()
    test_id = int((sysu_root / "exp" / "test_id.txt").read_text().split(",")[0])
    folder = sysu_root / "cam1" / f"{test_id:04d}"
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / "._0001.jpg").write_bytes(b"\x00\x05\x16\x07")
    after = SYSUDataset(str(sysu_root), height=32, width=16).test_split()
    assert after.visible.names == before.visible.names


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    ramp = (np.arange(64 * 32, dtype=np.uint32).reshape(64, 32) * 31).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "thermal.png")
    rgb = read_rgb(str(tmp_path / "thermal.png"))
    assert rgb.shape == (64, 32, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], np.round(ramp / 257.0).astype(np.uint8))
    assert rgb.min() == 0 and rgb.max() == round(ramp.max() / 257)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels is then a "bomb"
    with pytest.raises(DatasetError, match="refusing image"):
        read_rgb(str(tmp_path / "bomb.png"))


def test_prepared_arrays_of_other_split_files_are_not_used(sysu_root):
    prepare_sysu(SYSUDataset(str(sysu_root), height=32, width=16), chunk=20)
    fresh = SYSUDataset(str(sysu_root), height=32, width=16)
    assert fresh.prepared_split() is not None
    # Move one identity from train to test: the packed arrays no longer describe the split.
    train_ids = (sysu_root / "exp" / "train_id.txt").read_text().strip().split(",")
    (sysu_root / "exp" / "train_id.txt").write_text(",".join(train_ids[1:]))
    moved = SYSUDataset(str(sysu_root), height=32, width=16)
    assert moved.prepared_split() is None
    assert moved.train_split().visible.names[0].endswith(".jpg")
    assert moved.num_train_ids == int(moved.train_split().visible.ids.max()) + 1
    # Arrays without their fingerprint (e.g. packed by other code) are not trusted either.
    (sysu_root / "train_resized_fingerprint.json").unlink()
    (sysu_root / "exp" / "train_id.txt").write_text(",".join(train_ids))
    assert SYSUDataset(str(sysu_root), height=32, width=16).prepared_split() is None


@pytest.mark.parametrize("loader, warned", [("loader=small", True), ("loader=paper", False)])
def test_packing_sysu_at_another_size_than_the_presets_warns_at_once(
    sysu_root, tmp_path, caplog, monkeypatch, loader, warned
):
    import logging

    from ddag.tasks import prepare
    from tests.conftest import compose_config

    monkeypatch.setattr(prepare, "prepare_sysu", lambda dataset: {"packed": "skipped"})
    cfg = compose_config(
        ["task=prepare", "dataset=sysu", f"dataset.root={sysu_root}", loader, "task.mode=prepare"],
        output_dir=tmp_path / "out",
    )
    with caplog.at_level(logging.WARNING, logger="ddag.tasks.prepare"):
        prepare.run(run_config(cfg))
    assert ("the SYSU presets train at 288x144" in caplog.text) == warned
