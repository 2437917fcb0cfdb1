"""task=score on both feature layouts, its errors, the split-file download and the doctor."""

import hashlib
import json
import re

import numpy as np
import pytest

from ddag.config.run_config import run_config
from ddag.data.datasets.base import ImageSet
from ddag.data.feature_files import check_identity_counts, read_features
from ddag.errors import CheckpointError, DatasetError
from ddag.evaluation.evaluator import evaluate_features
from ddag.evaluation.protocols import CrossModalProtocol, SYSUOfficialProtocol
from ddag.tasks import prepare, score
from tests.builders import (
    OFFICIAL_TEST_IDS,
    official_split_layout,
    sysu_features,
    write_official_split_files,
    write_rand_perm_file,
    write_sysu_mat_features,
    write_sysu_tree_for_counts,
    write_test_id_file,
)
from tests.conftest import DATA, compose_config
from tests.loopback import serving
from tests.test_run_cli import run_cli

METRICS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")


def _golden_case(tmp_path):
    """Split files and features of the first Octave golden case, as the authors lay them out."""
    case = json.loads((DATA / "golden_sysu_official.json").read_text())["cases"][0]
    perms = {
        int(c): {int(i): np.array(t) for i, t in v.items()} for c, v in case["permutations"].items()
    }
    lengths = {int(c): n for c, n in case["cell_lengths"].items()}
    split_dir = tmp_path / "SYSU-MM01" / "evaluation" / "data_split"
    write_rand_perm_file(split_dir, perms, lengths)
    write_test_id_file(split_dir, case["test_ids"])
    features = {
        int(c): {int(i): np.array(m) for i, m in v.items()} for c, v in case["features"].items()
    }
    (tmp_path / "feat").mkdir()
    write_sysu_mat_features(str(tmp_path / "feat" / "feat_deep"), features)
    return case, split_dir, tmp_path / "feat" / "feat_deep"


@pytest.mark.slow
def test_the_issue_command_scores_the_authors_layout_as_their_matlab_code(tmp_path):
    case, split_dir, prefix = _golden_case(tmp_path)
    out = tmp_path / "run"
    result = run_cli(
        "task=score",
        f"task.features={prefix}",
        "eval/protocol=[sysu_official_all,sysu_official_indoor]",
        f"eval.protocol.sysu_official_all.split_dir={split_dir}",
        f"eval.protocol.sysu_official_indoor.split_dir={split_dir}",
        "eval.protocol.sysu_official_all.shots=10",
        "eval.protocol.sysu_official_indoor.shots=10",
        "eval.distance=euclidean",
        f"hydra.run.dir={out}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = json.loads((out / "results.json").read_text())
    assert [r["protocol"] for r in records] == [
        "sysu_official_all_10shot",
        "sysu_official_indoor_10shot",
    ]
    for record, key in zip(records, ("all_10shot", "indoor_10shot")):
        expected = case["octave"][key]
        assert len(record["trials"]) == 10 and record["flags"]["distance"] == "euclidean"
        for trial, got in enumerate(record["trials"]):
            assert set(got) == set(METRICS) and all(0 <= got[m] <= 1 for m in METRICS)
            assert got["rank1"] == pytest.approx(expected["cmc"][trial][0], abs=1e-6)
            assert got["rank20"] == pytest.approx(expected["cmc"][trial][19], abs=1e-6)
            assert got["mAP"] == pytest.approx(expected["mAP"][trial], abs=1e-6)
    assert (out / "cmc.png").stat().st_size > 0
    assert "sysu_official_all_10shot" in result.stdout + result.stderr  # the printed table


def _npz_split(rng, modality, cam, num_ids=6, per_id=4, dim=8, centres=None):
    ids = np.repeat(np.arange(num_ids), per_id)
    x = centres[ids] + 0.7 * rng.normal(size=(len(ids), dim))
    return {
        "names": np.array([f"{modality}/{i:02d}_{k}.png" for k, i in enumerate(ids)]),
        "ids": ids,
        "cams": np.full(len(ids), cam),
        "fc": x.astype(np.float32),
        "fc_att": (x + 0.1 * rng.normal(size=x.shape)).astype(np.float32),
    }


def test_score_reads_extract_files_one_per_modality_or_one_holding_both(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 8))
    parts = {m: _npz_split(rng, m, c, centres=centres) for m, c in (("visible", 1), ("thermal", 2))}
    for modality, part in parts.items():
        np.savez(tmp_path / f"{modality}.npz", modality=modality, **part)
    both = {k: np.concatenate([parts["visible"][k], parts["thermal"][k]]) for k in parts["visible"]}
    both["modality"] = np.array(["visible"] * 24 + ["thermal"] * 24)
    np.savez(tmp_path / "both.npz", **both)
    expected = evaluate_features(
        {m: {"FC": p["fc"], "FC_att": p["fc_att"]} for m, p in parts.items()},
        _split_of(parts),
        [CrossModalProtocol("visible", "thermal"), CrossModalProtocol("thermal", "visible")],
    )
    for features, name in (
        ([tmp_path / "visible.npz", tmp_path / "thermal.npz"], "a"),
        (tmp_path / "both.npz", "b"),
    ):
        value = f"[{','.join(map(str, features))}]" if isinstance(features, list) else str(features)
        cfg = compose_config(["task=score", f"task.features={value}"], output_dir=tmp_path / name)
        summary = score.run(run_config(cfg))
        records = json.loads((tmp_path / name / "results.json").read_text())
        assert [(r["protocol"], r["feature"]) for r in records] == [
            (r.protocol, r.feature) for r in expected
        ]
        for got, want in zip(records, expected):
            assert got["trials"] == want.trials
        assert summary["v2t/FC_att/rank1"] == pytest.approx(expected[1].mean["rank1"])


def _split_of(parts):
    from ddag.data.datasets.base import Split

    sets = {m: ImageSet(p["ids"], p["cams"], list(p["names"])) for m, p in parts.items()}
    return Split(visible=sets["visible"], thermal=sets["thermal"])


def test_bad_feature_files_are_named_in_one_paragraph(tmp_path):
    counts = official_split_layout(1)
    write_official_split_files(tmp_path / "split", counts, 1, test_ids=OFFICIAL_TEST_IDS)
    features = sysu_features(counts, 1)

    def scored(feats, name):
        prefix = tmp_path / name
        write_sysu_mat_features(str(prefix), feats)
        _, split = read_features(str(prefix))
        protocol = SYSUOfficialProtocol("all", 1, str(tmp_path / "split"))
        check_identity_counts(split, protocol.splits.cell_lengths, str(prefix))
        return protocol.check(split)

    assert scored(features, "good") == []
    more = {c: dict(v) for c, v in features.items()}
    more[1][40] = np.ones((2, 6))  # an identity the split file does not cover
    with pytest.raises(DatasetError, match="features for identity 40.*covers identities 1.."):
        scored(more, "more_ids")
    rows = {c: dict(v) for c, v in features.items()}
    identity = OFFICIAL_TEST_IDS[1]
    rows[4][identity] = rows[4][identity][:-1]
    problems = scored(rows, "rows")
    assert any(p.startswith(f"camera 4, identity {identity:04d}") for p in problems), problems
    wide = {c: dict(v) for c, v in features.items()}
    wide[5] = {i: np.hstack([m, m]) for i, m in wide[5].items()}
    with pytest.raises(DatasetError, match="feature dimensions differ.*6 columns.*12"):
        scored(wide, "dims")
    nan = {c: dict(v) for c, v in features.items()}
    nan[3][identity] = nan[3][identity].copy()
    nan[3][identity][0, 0] = np.nan
    with pytest.raises(DatasetError, match=re.escape(f"feature{{{identity}}} contains NaN")):
        scored(nan, "nan")
    with pytest.raises(DatasetError, match="feat_missing_cam1.mat does not exist"):
        read_features(str(tmp_path / "feat_missing"))
    np.savez(
        tmp_path / "one.npz",
        modality="visible",
        names=np.array(["a"]),
        ids=[1],
        cams=[1],
        fc=np.zeros((1, 4), np.float32),
    )
    with pytest.raises(DatasetError, match="no thermal features"):
        read_features(str(tmp_path / "one.npz"))


def test_a_bad_feature_file_ends_the_run_with_one_paragraph(tmp_path):
    (tmp_path / "broken.npz").write_bytes(b"not a zip file")
    result = run_cli(
        "task=score",
        f"task.features={tmp_path / 'broken.npz'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 1
    assert "DatasetError" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def split_server(tmp_path):
    """A loopback HTTP server over a folder with test-made split files."""
    served = tmp_path / "served"
    write_official_split_files(served, official_split_layout(0), 0, test_ids=OFFICIAL_TEST_IDS)
    with serving(served) as (base, server):
        yield base + "/", served, server


def test_fetch_splits_downloads_checks_and_keeps_the_files_once(
    tmp_path, split_server, monkeypatch
):
    url, served, server = split_server
    target = tmp_path / "SYSU-MM01" / "exp"
    overrides = ["task=prepare", "task.mode=fetch_splits", f"task.splits_url={url}"]
    cfg = compose_config(overrides + [f"task.split_dir={target}"], output_dir=tmp_path / "run")
    # The published digests refuse the test-made files, and nothing is kept.
    with pytest.raises(CheckpointError, match="has sha256"):
        prepare.run(run_config(cfg))
    assert not list(target.glob("*.mat")) and not list(target.glob("*.part"))
    digests = {
        n: hashlib.sha256((served / n).read_bytes()).hexdigest() for n in prepare.SPLIT_FILES
    }
    monkeypatch.setattr(prepare, "SPLIT_FILES", digests)
    written = prepare.run(run_config(cfg))
    assert sorted(written) == ["rand_perm_cam.mat", "test_id.mat"]
    assert (target / "rand_perm_cam.mat").read_bytes() == (
        served / "rand_perm_cam.mat"
    ).read_bytes()
    server.shutdown()  # present and matching: not downloaded again
    assert prepare.run(run_config(cfg)) == written
    # Through the dataset root, as the README says: dataset=sysu puts them into <root>/exp.
    root = tmp_path / "data" / "SYSU-MM01"
    (root / "exp").mkdir(parents=True)
    for name in digests:
        (root / "exp" / name).write_bytes((target / name).read_bytes())
    cfg = compose_config(
        overrides + ["dataset=sysu", f"dataset.root={root}"], output_dir=tmp_path / "r"
    )
    assert prepare.run(run_config(cfg))["test_id.mat"] == str(root / "exp" / "test_id.mat")
    # Only http(s) is fetched: a file:// source is refused before anything is read or written.
    local = overrides[:2] + [f"task.splits_url=file://{served}", f"task.split_dir={tmp_path / 'f'}"]
    with pytest.raises(CheckpointError, match="only http"):
        prepare.run(run_config(compose_config(local, output_dir=tmp_path / "f_run")))
    assert not (tmp_path / "f").exists() or not any((tmp_path / "f").iterdir())


def test_the_doctor_says_where_to_get_the_split_file_and_checks_it_against_the_tree(tmp_path):
    counts = official_split_layout(4)
    root = write_sysu_tree_for_counts(tmp_path / "SYSU-MM01", counts, OFFICIAL_TEST_IDS)
    check = ["task=prepare", "task.mode=check", "dataset=sysu", f"dataset.root={root}"]
    summary = prepare.run(run_config(compose_config(check, output_dir=tmp_path / "a")))
    assert summary["errors"] == 0 and summary["warnings"] >= 1
    wrong = {cam: dict(per_id) for cam, per_id in counts.items()}
    identity = OFFICIAL_TEST_IDS[2]
    wrong[1][identity] = counts[1][identity] + 2
    write_official_split_files(root / "exp", wrong, 4, test_ids=OFFICIAL_TEST_IDS)
    with pytest.raises(DatasetError) as err:
        prepare.run(run_config(compose_config(check, output_dir=tmp_path / "b")))
    assert (
        f"camera 1, identity {identity:04d}: rand_perm_cam.mat numbers {counts[1][identity] + 2} "
        f"images, the test split holds {counts[1][identity]}"
    ) in str(err.value)


def test_fetch_splits_into_a_folder_it_cannot_write_is_a_clear_error(tmp_path):
    from ddag.errors import ConfigError

    (tmp_path / "a_file").write_text("x")
    overrides = ["task=prepare", "task.mode=fetch_splits", "task.splits_url=https://example.org"]
    overrides.append(f"task.split_dir={tmp_path / 'a_file' / 'exp'}")
    with pytest.raises(ConfigError, match="cannot be written to .*a_file/exp"):
        prepare.run(run_config(compose_config(overrides, output_dir=tmp_path / "run")))
