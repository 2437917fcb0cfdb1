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
            # Cameras 3 and 4 keep every identity, so each has images in both modalities.
            keep = identity in test_ids[:2] or cam in (3, 4)
            if rng.random() < 0.2 and not keep or (cam, identity) == (5, 5):
                continue
            low = min_gallery if cam in (1, 2, 4, 5) else 1
            counts[cam][identity] = int(rng.integers(low, low + 6))
    return counts


def random_permutations(counts, seed: int, trials: int = 10):
    """{cam: {identity: (trials, images) 1-based permutations}} for the image counts."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {
        cam: {
            i: np.stack([rng.permutation(n) + 1 for _ in range(trials)]) for i, n in per_id.items()
        }
        for cam, per_id in counts.items()
    }


def write_rand_perm_file(split_dir: Path, permutations, cell_lengths=None, trials: int = 10):
    """rand_perm_cam.mat as the authors store it: a 6 x 1 cell of per-camera cell vectors
    (N x 1, N the camera's highest identity unless `cell_lengths` says), each a (trials x
    images) uint8 permutation, empty where the camera has no image of the identity."""
    import numpy as np
    import scipy.io

    split_dir.mkdir(parents=True, exist_ok=True)
    cameras = np.empty((6, 1), dtype=object)
    for cam in range(1, 7):
        tables = permutations.get(cam, {})
        length = (cell_lengths or {}).get(cam, max(tables, default=0))
        cells = np.empty((length, 1), dtype=object)
        for identity in range(1, length + 1):
            table = tables.get(identity)
            cells[identity - 1, 0] = (
                np.asarray(table, dtype=np.uint8)
                if table is not None and np.size(table)
                else np.zeros((trials, 0), dtype=np.uint8)
            )
        cameras[cam - 1, 0] = cells
    scipy.io.savemat(str(split_dir / "rand_perm_cam.mat"), {"rand_perm_cam": cameras})
    return split_dir / "rand_perm_cam.mat"


def write_test_id_file(split_dir: Path, test_ids) -> Path:
    import numpy as np
    import scipy.io

    split_dir.mkdir(parents=True, exist_ok=True)
    ids = np.asarray(sorted(test_ids), dtype=np.uint16)[None, :]
    scipy.io.savemat(str(split_dir / "test_id.mat"), {"id": ids})
    return split_dir / "test_id.mat"


def write_official_split_files(split_dir: Path, counts, seed: int, trials: int = 10, test_ids=None):
    """rand_perm_cam.mat with random permutations for `counts` (unequal cell lengths, empty
    cells) and, when `test_ids` is given, test_id.mat; returns the permutations."""
    permutations = random_permutations(counts, seed, trials)
    write_rand_perm_file(split_dir, permutations, trials=trials)
    if test_ids is not None:
        write_test_id_file(split_dir, test_ids)
    return permutations


def write_sysu_tree_for_counts(root: Path, counts, test_ids, seed: int = 0) -> Path:
    """A SYSU-MM01 tree with `counts[cam][identity]` images per folder (8x4 JPEGs), frame numbers
    drawn at random so that file-name order is not creation order; exp/ lists the identities
    not in `test_ids` as training (the last two as validation) and `test_ids` as test."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    identities = sorted({i for per_id in counts.values() for i in per_id})
    for cam, per_id in counts.items():
        for identity, n in per_id.items():
            folder = root / f"cam{cam}" / f"{identity:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            for frame in rng.choice(np.arange(1, 10000), n, replace=False):
                pixels = rng.integers(0, 255, (8, 4, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{frame:04d}.jpg")
    train = [i for i in identities if i not in set(test_ids)]
    (root / "exp").mkdir(parents=True, exist_ok=True)
    for name, ids in (("train", train[:-2]), ("val", train[-2:]), ("test", sorted(test_ids))):
        (root / "exp" / f"{name}_id.txt").write_text(",".join(map(str, ids)) + "\n")
    return root


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
