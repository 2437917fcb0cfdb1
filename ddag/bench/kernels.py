"""Micro-benchmarks that need no configuration: a 3x3 convolution against a matmul (the slow CPU
convolution of MindSpore 2.9.0 / 2.10.0), and SYSU-sized and RegDB-sized evaluations."""

from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import ops

from ddag.bench.timing import repeat_timed as _repeat
from ddag.data.datasets.base import ImageSet, Split
from ddag.data.sysu_splits import OfficialSplits
from ddag.evaluation.gallery_rules import RULES
from ddag.evaluation.metrics import rank_metrics
from ddag.evaluation.protocols import SYSUOfficialProtocol
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def bench_conv(repeats: int, warmup: int) -> dict:
    x = ms.Tensor(np.random.rand(8, 64, 72, 36).astype(np.float32))
    w = ms.Tensor(np.random.rand(64, 64, 3, 3).astype(np.float32))
    a = ms.Tensor(np.random.rand(1024, 1024).astype(np.float32))
    conv = _repeat(lambda: ops.conv2d(x, w, pad_mode="same").asnumpy(), repeats, warmup, "conv")
    matmul = _repeat(lambda: ops.matmul(a, a).asnumpy(), repeats, warmup, "matmul")
    conv_gflops = 2 * 8 * 64 * 72 * 36 * 64 * 9 / conv["median"] / 1e9
    matmul_gflops = 2 * 1024**3 / matmul["median"] / 1e9
    if conv_gflops < 0.05 * matmul_gflops:
        log.warning(
            "3x3 convolution runs at %.1f GFLOP/s against %.1f for matmul: this MindSpore "
            "build has a slow CPU convolution (2.9.0 and 2.10.0 do; use 2.8.0)",
            conv_gflops,
            matmul_gflops,
        )
    return {"conv3x3_gflops": conv_gflops, "matmul_gflops": matmul_gflops, "conv_s": conv}


def bench_metrics(repeats: int, warmup: int) -> dict:
    rng = np.random.default_rng(0)
    q_ids, g_ids = rng.integers(0, 96, 3803), np.repeat(np.arange(96), 4)[:301]
    q_cams, g_cams = rng.choice([3, 6], 3803), rng.choice([1, 2, 4, 5], 301)
    sysu = [rng.random((3803, 301)) for _ in range(10)]
    regdb = rng.random((2060, 2060))
    r_ids = np.repeat(np.arange(206), 10)
    split, splits = _sysu_sized_official_split(rng)
    official = {}
    for shots in (1, 10):
        protocol = SYSUOfficialProtocol.from_splits("all", shots, splits)
        sizes = [protocol.select(split, t) for t in range(protocol.trials)]
        official[shots] = (protocol, [rng.random((len(q), len(g))) for _, q, _, g in sizes])
    return {
        "sysu_10_trials_s": _repeat(
            lambda: [rank_metrics(d, q_ids, g_ids, q_cams, g_cams) for d in sysu],
            repeats,
            warmup,
            "metrics sysu",
        ),
        "regdb_s": _repeat(
            lambda: rank_metrics(regdb, r_ids, r_ids, rule=RULES["regdb"]),
            repeats,
            warmup,
            "metrics regdb",
        ),
        **{
            f"sysu_official_{shots}shot_10_trials_s": _repeat(
                lambda p=protocol, d=distances: _score_trials(p, split, d),
                repeats,
                warmup,
                f"metrics sysu official {shots}-shot",
            )
            for shots, (protocol, distances) in official.items()
        },
    }


def _sysu_sized_official_split(rng):
    """A SYSU-MM01-sized test split and fixed splits: 96 identities, 3803 thermal queries in
    cameras 3 and 6, 301 (identity, RGB camera) pairs of 13-30 images (as the published
    rand_perm_cam.mat: 301 single-shot and 3010 10-shot gallery images)."""
    ids = np.arange(1, 97)
    pairs = [(i, c) for i in ids for c in (1, 2, 4, 5)]
    gallery_pairs = [pairs[k] for k in np.sort(rng.choice(len(pairs), 301, replace=False))]
    query_counts = rng.multinomial(3803, np.full(192, 1 / 192))
    permutations = {cam: {} for cam in range(1, 7)}
    sets = {"visible": ([], []), "thermal": ([], [])}
    for (identity, cam), n in zip(gallery_pairs, rng.integers(13, 31, len(gallery_pairs))):
        permutations[cam][int(identity)] = np.stack([rng.permutation(n) for _ in range(10)])
        sets["visible"][0].extend([identity] * n)
        sets["visible"][1].extend([cam] * n)
    for (identity, cam), n in zip([(i, c) for i in ids for c in (3, 6)], query_counts):
        if n:
            permutations[cam][int(identity)] = np.stack([rng.permutation(n) for _ in range(10)])
            sets["thermal"][0].extend([identity] * n)
            sets["thermal"][1].extend([cam] * n)
    images = {
        m: ImageSet(i, c, [f"{m}/{k:06d}" for k in range(len(i))]) for m, (i, c) in sets.items()
    }
    lengths = {cam: 96 for cam in range(1, 7)}
    splits = OfficialSplits(permutations, ids, 10, Path("<in memory>"), lengths)
    return Split(visible=images["visible"], thermal=images["thermal"]), splits


def _score_trials(protocol, split, distances) -> None:
    """Gallery selection and metrics of every trial (the trials' distances precomputed, as
    the SYSU-sized metric timing above does)."""
    for trial in range(protocol.trials):
        _, q_idx, _, g_idx = protocol.select(split, trial)
        rank_metrics(
            distances[trial],
            split.thermal.ids[q_idx],
            split.visible.ids[g_idx],
            split.thermal.cams[q_idx],
            split.visible.cams[g_idx],
        )
