"""The official SYSU-MM01 protocol against the dataset authors' MATLAB evaluation.

Two references: golden numbers of wuancong/SYSU-MM01 `evaluation_SYSU_MM01.m`, run unchanged in
GNU Octave on test-made split and feature files (tests/data/golden_sysu_official.json, which
holds those inputs), and a line-by-line Python transcription of `get_testing_set.m`,
`get_cmc_multi_cam.m` and `get_map_multi_cam.m` below, run on further random cases.
"""

import json
import zlib

import numpy as np
import pytest

from ddag.config.run_config import run_config
from ddag.data.datasets.sysu import SYSUDataset
from ddag.data.feature_files import read_features
from ddag.data.sysu_splits import read_official_splits
from ddag.errors import ConfigError, DatasetError, EvaluationError
from ddag.evaluation.evaluator import evaluate_features
from ddag.evaluation.protocols import SYSUOfficialProtocol
from ddag.tasks.steps.data import build_protocols
from tests.builders import (
    OFFICIAL_TEST_IDS,
    official_split_layout,
    random_permutations,
    sysu_features,
    write_official_split_files,
    write_rand_perm_file,
    write_sysu_mat_features,
    write_sysu_tree_for_counts,
    write_test_id_file,
)
from tests.conftest import DATA

GALLERY = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
PROBE = (3, 6)
LOCATION = [1, 2, 2, 4, 5, 6]  # the authors' cam_id: camera 3 shares camera 2's location


def _matlab_testing_set(features, perms, lengths, trial, shots, search, test_ids):
    """get_testing_set.m: cameras in order, identities 1..length(feature) that are test ids."""
    out = {}
    for side, cams in (("gallery", GALLERY[search]), ("probe", PROBE)):
        x, y, c = [], [], []
        for cam in cams:
            for i_id in range(1, lengths[cam] + 1):
                if i_id not in test_ids:
                    continue
                table = perms[cam].get(i_id)
                if table is None or table.shape[1] == 0:
                    continue
                rows = table[trial][:shots] - 1 if side == "gallery" else slice(None)
                chosen = features[cam][i_id][rows]
                x.append(chosen)
                y += [i_id] * len(chosen)
                c += [LOCATION[cam - 1]] * len(chosen)
        out[side] = (np.concatenate(x), np.array(y), np.array(c))
    return out


def _matlab_cmc_and_map(gallery, probe):
    """get_cmc_multi_cam.m and get_map_multi_cam.m (pdist2 euclidean, MATLAB's stable sort)."""
    (xg, yg, cg), (xp, yp, cp) = gallery, probe
    dist = np.sqrt(((xp[:, None, :] - xg[None, :, :]) ** 2).sum(-1))
    ind = np.argsort(dist, axis=1, kind="stable")
    match_counter = np.zeros(len(np.unique(yg)))
    valid, ap_sum = 0, 0.0
    for i in range(len(yp)):
        y_result = yg[ind[i]][cg[ind[i]] != cp[i]]
        _, first = np.unique(y_result, return_index=True)
        unique_stable = y_result[np.sort(first)]
        match = unique_stable == yp[i]
        if match.sum():
            valid += 1
            match_counter[: len(match)] += match
        true_match_rank = np.flatnonzero(y_result == yp[i]) + 1
        if len(true_match_rank):
            ap_sum += np.mean(np.arange(1, len(true_match_rank) + 1) / true_match_rank)
    return np.cumsum(match_counter / valid), ap_sum / valid


def _scored(features_prefix, split_dir, search, shots, distance="euclidean"):
    features, split = read_features(features_prefix)
    protocol = SYSUOfficialProtocol(search, shots, str(split_dir))
    return evaluate_features(features, split, [protocol], distance=distance)[0]


@pytest.mark.parametrize(
    "case", json.loads((DATA / "golden_sysu_official.json").read_text())["cases"]
)
def test_official_protocol_equals_the_authors_matlab_evaluation(case, tmp_path):
    perms = {
        int(c): {int(i): np.array(t) for i, t in v.items()} for c, v in case["permutations"].items()
    }
    lengths = {int(c): n for c, n in case["cell_lengths"].items()}
    write_rand_perm_file(tmp_path / "split", perms, lengths)
    write_test_id_file(tmp_path / "split", case["test_ids"])
    features = {
        int(c): {int(i): np.array(m) for i, m in v.items()} for c, v in case["features"].items()
    }
    write_sysu_mat_features(str(tmp_path / "feat"), features, column=case["column_cells"])
    for key, expected in case["octave"].items():
        search, shots = key.split("_")[0], int(key.split("_")[1].rstrip("shot"))
        record = _scored(tmp_path / "feat", tmp_path / "split", search, shots)
        assert record.protocol == f"sysu_official_{search}" + ("" if shots == 1 else "_10shot")
        assert len(record.trials) == 10
        cmc = np.array(expected["cmc"])
        for trial, got in enumerate(record.trials):
            for rank in (1, 5, 10, 20):
                assert got[f"rank{rank}"] == pytest.approx(cmc[trial, rank - 1], abs=1e-6)
            assert got["mAP"] == pytest.approx(expected["mAP"][trial], abs=1e-6)


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("search", ["all", "indoor"])
@pytest.mark.parametrize("shots", [1, 10])
def test_official_protocol_equals_a_transcription_of_the_matlab_functions(
    seed, search, shots, tmp_path
):
    counts = official_split_layout(seed, min_gallery=10)
    perms = write_official_split_files(tmp_path, counts, seed, test_ids=OFFICIAL_TEST_IDS)
    features = sysu_features(counts, seed)
    write_sysu_mat_features(str(tmp_path / "feat"), features, column=seed % 2 == 0)
    lengths = {cam: max(per_id) for cam, per_id in counts.items()}
    record = _scored(tmp_path / "feat", tmp_path, search, shots)
    for trial, got in enumerate(record.trials):
        sets = _matlab_testing_set(
            features, perms, lengths, trial, shots, search, OFFICIAL_TEST_IDS
        )
        cmc, mAP = _matlab_cmc_and_map(sets["gallery"], sets["probe"])
        for rank in (1, 5, 10, 20):
            assert got[f"rank{rank}"] == pytest.approx(cmc[rank - 1], abs=1e-6)
        assert got["mAP"] == pytest.approx(mAP, abs=1e-6)
        assert 0 < got["mINP"] <= got["mAP"] + 1e-12


def test_the_gallery_of_a_synthesized_tree_is_the_one_the_matlab_functions_select(tmp_path):
    counts = official_split_layout(5, min_gallery=10)
    root = write_sysu_tree_for_counts(tmp_path / "SYSU-MM01", counts, OFFICIAL_TEST_IDS)
    perms = write_official_split_files(root / "exp", counts, 5, test_ids=OFFICIAL_TEST_IDS)
    split = SYSUDataset(str(root), height=8, width=4).test_split()
    files = {
        (cam, i): sorted((root / f"cam{cam}" / f"{i:04d}").iterdir())
        for cam in counts
        for i in counts[cam]
    }
    for search in ("all", "indoor"):
        for shots in (1, 10):
            protocol = SYSUOfficialProtocol(search, shots, str(root / "exp"))
            assert protocol.check(split) == []
            for trial in range(10):
                _, q_idx, _, g_idx = protocol.select(split, trial)
                expected_gallery = [
                    str(files[(cam, i)][k - 1])
                    for cam in GALLERY[search]
                    for i in OFFICIAL_TEST_IDS
                    if (cam, i) in files
                    for k in perms[cam][i][trial][:shots]
                ]
                expected_probes = [
                    str(f)
                    for cam in PROBE
                    for i in OFFICIAL_TEST_IDS
                    for f in files.get((cam, i), [])
                ]
                assert [split.visible.names[j] for j in g_idx] == expected_gallery
                assert [split.thermal.names[j] for j in q_idx] == expected_probes


def test_a_split_file_that_does_not_number_the_tree_names_camera_identity_and_counts(tmp_path):
    counts = official_split_layout(6)
    root = write_sysu_tree_for_counts(tmp_path / "SYSU-MM01", counts, OFFICIAL_TEST_IDS)
    wrong = {cam: dict(per_id) for cam, per_id in counts.items()}
    wrong[3][OFFICIAL_TEST_IDS[0]] += 1
    write_official_split_files(root / "exp", wrong, 6, test_ids=OFFICIAL_TEST_IDS)
    protocol = SYSUOfficialProtocol("all", 1, str(root / "exp"))
    split = SYSUDataset(str(root), height=8, width=4).test_split()
    identity = OFFICIAL_TEST_IDS[0]
    expected = (
        f"camera 3, identity {identity:04d}: rand_perm_cam.mat numbers {counts[3][identity] + 1} "
        f"images, the test split holds {counts[3][identity]}"
    )
    assert [p for p in protocol.check(split) if p.startswith(expected)]
    with pytest.raises(EvaluationError, match="does not match the test images"):
        protocol.select(split, 0)


def test_a_missing_split_file_says_where_to_get_it(tmp_path):
    with pytest.raises(DatasetError) as err:
        SYSUOfficialProtocol("all", 1, str(tmp_path))
    message = str(err.value)
    assert "evaluation/data_split/rand_perm_cam.mat" in message
    assert "90402382dd587e05b615dcee35637fee9ad61e56e26ac86988a00a43997ac0a7" in message
    assert "task.mode=fetch_splits" in message


def test_shots_other_than_one_or_ten_are_refused(tmp_path):
    write_official_split_files(tmp_path, official_split_layout(0), 0)
    for shots in (0, 5, 11):
        with pytest.raises(ConfigError, match="choose 1 or 10"):
            SYSUOfficialProtocol("all", shots, str(tmp_path))


def _malformed_files(tmp_path):
    import scipy.io

    good = random_permutations(official_split_layout(0), 0)
    yield "not a MATLAB v5 file", b"MATLAB 5.0 MAT-file? no, a text file\n" * 10
    path = tmp_path / "x.mat"
    scipy.io.savemat(str(path), {"something_else": np.arange(3)})
    yield "holds no variable 'rand_perm_cam'", path.read_bytes()
    scipy.io.savemat(str(path), {"rand_perm_cam": np.arange(6.0)})
    yield "is numeric, not a cell array", path.read_bytes()
    bad = {cam: dict(per_id) for cam, per_id in good.items()}
    table = bad[3][2].copy()
    table[4, 0] = table[4, 1]  # a repeated image number in trial 5
    bad[3][2] = table
    write_rand_perm_file(tmp_path / "bad", bad)
    yield "is not a permutation of 1..", (tmp_path / "bad" / "rand_perm_cam.mat").read_bytes()
    short = {cam: {i: t[:7] for i, t in per_id.items()} for cam, per_id in good.items()}
    short[1] = good[1]
    write_rand_perm_file(tmp_path / "short", short)
    yield "the same number of trials", (tmp_path / "short" / "rand_perm_cam.mat").read_bytes()
    # A 1 MB file whose compressed element inflates to 1 GB (compressed chunk by chunk): a
    # one-number array whose byte count claims a gigabyte of trailing zeros.
    header = b"MATLAB 5.0 MAT-file".ljust(124) + b"\x00\x01IM"
    packer, zeros = zlib.compressobj(9), bytes(1 << 20)

    def element(kind, data):
        return kind.to_bytes(4, "little") + len(data).to_bytes(4, "little") + data

    array = element(6, (6).to_bytes(4, "little") + bytes(4)) + element(5, bytes([1, 0, 0, 0] * 2))
    array += element(1, b"rand_perm_cam".ljust(16, b"\0"))[: 8 + 13] + bytes(3)
    array += element(9, bytes(8))
    start = (14).to_bytes(4, "little") + (1 << 30).to_bytes(4, "little") + array
    stream = packer.compress(start) + b"".join(packer.compress(zeros) for _ in range(1024))
    stream += packer.flush()
    tag = (15).to_bytes(4, "little") + len(stream).to_bytes(4, "little")
    yield "inflate to more than", header + tag + stream


def test_a_malformed_split_file_is_refused_in_one_paragraph(tmp_path):
    import resource

    for problem, content in _malformed_files(tmp_path):
        folder = tmp_path / "case"
        folder.mkdir(exist_ok=True)
        (folder / "rand_perm_cam.mat").write_bytes(content)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with pytest.raises(DatasetError) as err:
            read_official_splits(folder)
        assert problem in str(err.value) and "\n" not in str(err.value), str(err.value)
        assert "task.mode=fetch_splits" in str(err.value)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert grown < 400 * 1024, f"{problem}: {grown} KiB"


def test_test_id_file_decides_the_identities_and_the_split_file_its_trials(tmp_path):
    counts = official_split_layout(2)
    write_official_split_files(tmp_path, counts, 2, trials=10, test_ids=(2, 3, 4))
    splits = read_official_splits(tmp_path)
    assert splits.trials == 10 and list(splits.test_ids) == [2, 3, 4]
    assert splits.cell_lengths[1] == 28 and splits.cell_lengths[3] == 30  # unequal cell vectors
    absent = [(cam, i) for cam in counts for i in range(1, 31) if i not in counts[cam]]
    assert absent and all(splits.permutation(cam, i, 0) is None for cam, i in absent)
    write_sysu_mat_features(str(tmp_path / "feat"), sysu_features(counts, 2))
    features, split = read_features(str(tmp_path / "feat"))
    protocol = SYSUOfficialProtocol("all", 1, str(tmp_path))
    _, q_idx, _, g_idx = protocol.select(split, 0)
    assert set(split.thermal.ids[q_idx]) == {2, 3, 4} >= set(split.visible.ids[g_idx])


def test_test_ids_the_split_cannot_place_and_too_many_trials_are_refused(tmp_path):
    counts = official_split_layout(2)
    write_official_split_files(tmp_path / "a", counts, 2, trials=10, test_ids=(2, 3, 999))
    with pytest.raises(DatasetError, match=r"test_id\.mat.*1 identities that have no image.*999"):
        read_official_splits(tmp_path / "a")
    write_official_split_files(tmp_path / "b", counts, 2, trials=101)
    with pytest.raises(DatasetError, match="declares 101 trials"):
        read_official_splits(tmp_path / "b")


def test_split_dir_defaults_to_the_dataset_roots_exp_folder(tmp_path):
    from tests.conftest import compose_config

    write_official_split_files(tmp_path / "SYSU" / "exp", official_split_layout(0), 0)
    selected = ["eval/protocol=[sysu_official_all]", "eval.protocol.sysu_official_all.shots=10"]
    cfg = compose_config(["dataset=sysu", f"dataset.root={tmp_path / 'SYSU'}", *selected])
    (protocol,) = build_protocols(run_config(cfg))
    assert protocol.splits.path == tmp_path / "SYSU" / "exp" / "rand_perm_cam.mat"
    assert protocol.name == "sysu_official_all_10shot"
    with pytest.raises(ConfigError, match="add eval.protocol.sysu_official_all.split_dir=FOLDER"):
        build_protocols(run_config(compose_config(selected)))


def test_task_eval_on_a_sysu_tree_scores_the_gallery_the_matlab_functions_select(tmp_path):
    """End to end: a checkpoint evaluated with task=eval on a synthesized tree and split file
    gives, per trial, the numbers of the MATLAB transcription on the same features."""
    from ddag.api import load_model
    from ddag.tasks import eval as eval_task
    from ddag.tasks import train
    from tests.conftest import TINY, compose_config

    eager = ["runtime.mode=pynative", "runtime.jit_step=false"]
    train.run(
        run_config(compose_config(TINY + ["+debug=fast", *eager], output_dir=tmp_path / "train"))
    )
    checkpoint = tmp_path / "train" / "checkpoints" / "last.ckpt"
    counts = official_split_layout(8, min_gallery=10)
    root = write_sysu_tree_for_counts(tmp_path / "SYSU-MM01", counts, OFFICIAL_TEST_IDS)
    perms = write_official_split_files(root / "exp", counts, 8, test_ids=OFFICIAL_TEST_IDS)
    overrides = [
        "task=eval",
        f"task.checkpoint={checkpoint}",
        "dataset=sysu",
        f"dataset.root={root}",
        "eval/protocol=[sysu_official_indoor]",
        "eval.protocol.sysu_official_indoor.shots=10",
        "eval.distance=euclidean",
        "logger=none",
        *eager,
    ]
    eval_task.run(run_config(compose_config(overrides, output_dir=tmp_path / "eval")))
    records = json.loads((tmp_path / "eval" / "results.json").read_text())
    model = load_model(str(checkpoint), mode="pynative")
    features = {}
    for cam, per_id in counts.items():
        modality = "visible" if cam in GALLERY["all"] else "thermal"
        features[cam] = {}
        for identity in per_id:
            files = sorted((root / f"cam{cam}" / f"{identity:04d}").iterdir())
            features[cam][identity] = model.extract([str(f) for f in files], modality)[1]
    lengths = {cam: max(per_id) for cam, per_id in counts.items()}
    (record,) = [r for r in records if r["feature"] == "FC_att"]
    assert record["protocol"] == "sysu_official_indoor_10shot" and len(record["trials"]) == 10
    for trial, got in enumerate(record["trials"]):
        sets = _matlab_testing_set(features, perms, lengths, trial, 10, "indoor", OFFICIAL_TEST_IDS)
        cmc, mAP = _matlab_cmc_and_map(sets["gallery"], sets["probe"])
        assert got["rank1"] == pytest.approx(cmc[0], abs=1e-6)
        assert got["rank5"] == pytest.approx(cmc[4], abs=1e-6)
        assert got["mAP"] == pytest.approx(mAP, abs=1e-6)
