"""Miniature RegDB and SYSU-MM01 trees in their exact on-disk layouts, written into tmp paths."""

from pathlib import Path

from ddag.data.datasets.synthetic import SyntheticDataset
from ddag.data.synthetic_disk import write_regdb, write_sysu


def small_synthetic(seed: int = 0) -> SyntheticDataset:
    return SyntheticDataset(
        num_train_ids=6,
        num_val_ids=2,
        num_test_ids=4,
        images_per_id=8,
        height=32,
        width=16,
        seed=seed,
    )


def regdb_tree(root: Path) -> Path:
    """6+2+4 identities, 8 images per modality, idx files for trials 1..10."""
    return write_regdb(small_synthetic(), root)


def sysu_tree(root: Path) -> Path:
    """6 train, 2 val, 4 test identities; 2 images per RGB camera, 4 per IR camera."""
    return write_sysu(small_synthetic(), root)


OFFICIAL_TEST_IDS = tuple(i for i in range(1, 31) if i % 5 != 1)  # 24 of 30 identities


def official_split_layout(seed: int, num_ids: int = 30, test_ids=OFFICIAL_TEST_IDS, min_gallery=1):
    """Image counts {cam: {identity: count}} of a miniature SYSU-MM01 with uneven cameras.

    Every camera has some identities without images (empty cells); gallery cameras hold either
    no image of an identity or at least `min_gallery` (10 for a 10-shot gallery).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    counts = {}
    for cam in (1, 2, 3, 4, 5, 6):
        counts[cam] = {}
        # Cameras 1, 2 and 6 saw fewer identities: their cell vectors are shorter (as in the
        # published file, 333 cells against 533).
        for identity in range(1, num_ids + 1 - 2 * (cam in (1, 2, 6))):
            if rng.random() < 0.2 and identity not in test_ids[:2] or (cam, identity) == (4, 5):
                continue
            low = min_gallery if cam in (1, 2, 4, 5) else 1
            counts[cam][identity] = int(rng.integers(low, low + 6))
    return counts


def write_official_split_files(split_dir: Path, counts, seed: int, trials: int = 10, test_ids=None):
    """rand_perm_cam.mat (one 1-based permutation per trial, identity and camera, empty cells
    where a camera has no image of an identity; unequal cell lengths per camera) and, when
    `test_ids` is given, test_id.mat, written with scipy as MATLAB v5 cell arrays."""
    import numpy as np
    import scipy.io

    rng = np.random.default_rng(seed)
    split_dir.mkdir(parents=True, exist_ok=True)
    cameras = np.empty((6, 1), dtype=object)
    for cam in range(1, 7):
        length = max(counts[cam]) if counts[cam] else 0
        cells = np.empty((length, 1), dtype=object)
        for identity in range(1, length + 1):
            n = counts[cam].get(identity, 0)
            cells[identity - 1, 0] = (
                np.stack([rng.permutation(n) + 1 for _ in range(trials)]).astype(np.uint8)
                if n
                else np.zeros((trials, 0), dtype=np.uint8)
            )
        cameras[cam - 1, 0] = cells
    scipy.io.savemat(str(split_dir / "rand_perm_cam.mat"), {"rand_perm_cam": cameras})
    if test_ids is not None:
        ids = np.asarray(sorted(test_ids), dtype=np.uint16)[None, :]
        scipy.io.savemat(str(split_dir / "test_id.mat"), {"id": ids})
    return split_dir


def sysu_features(counts, seed: int, dim: int = 6):
    """{cam: {identity: (images, dim) float64}}: an identity component plus noise, so that
    rankings are neither perfect nor random."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = {i: rng.normal(size=dim) for c in counts.values() for i in c}
    return {
        cam: {i: centres[i] + 1.2 * rng.normal(size=(n, dim)) for i, n in per_id.items()}
        for cam, per_id in counts.items()
    }


def write_sysu_mat_features(prefix: str, features, column: bool = False):
    """The authors' layout: <prefix>_cam<k>.mat with a cell array 'feature', feature{id} the
    (images x dim) matrix of identity id (empty for absent identities); 1 x N or N x 1 cells."""
    import numpy as np
    import scipy.io

    for cam, per_id in features.items():
        length = max(per_id) if per_id else 0
        dim = next(iter(per_id.values())).shape[1] if per_id else 1
        cells = np.empty((length, 1) if column else (1, length), dtype=object)
        for identity in range(1, length + 1):
            cells.flat[identity - 1] = per_id.get(identity, np.zeros((0, dim)))
        scipy.io.savemat(f"{prefix}_cam{cam}.mat", {"feature": cells})
