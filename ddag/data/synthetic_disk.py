"""Write the synthetic dataset to disk in the exact RegDB, SYSU-MM01 or LLCM layout.

Miniature copies exercise the real readers end to end (tests, demos) without the licensed data.
Identities are those of the synthetic train, val and test splits together.
"""

from pathlib import Path
from typing import Iterator, Tuple

import numpy as np
from PIL import Image

from ddag.data.datasets.llcm import INDEX_FILES, TEST_FOLDERS
from ddag.data.datasets.synthetic import SyntheticDataset
from ddag.data.datasets.sysu import IR_CAMERAS, RGB_CAMERAS

LAYOUTS = ("regdb", "sysu", "llcm")


def _identities(dataset: SyntheticDataset) -> Iterator[Tuple[int, np.ndarray, np.ndarray]]:
    """(identity, visible images, thermal images) for every synthetic identity, ascending.

    Synthetic training identities are 0..num_train-1, so their training labels are already the
    global identity numbers; val and test splits keep theirs.
    """
    for split in (dataset.train_split(), dataset.val_split(), dataset.test_split()):
        if split is None:
            continue
        for identity in np.unique(split.visible.ids):
            rows = np.flatnonzero(split.visible.ids == identity)
            yield int(identity), split.visible.images[rows], split.thermal.images[rows]


def write_regdb(dataset: SyntheticDataset, root, trials=range(1, 11)) -> Path:
    """RegDB layout: Visible/<id>/*.bmp, Thermal/<id>/*.bmp, idx/{train,test}_{mod}_<t>.txt.

    Each trial splits the identities in half at random (seeded by the trial number).
    """
    root = Path(root)
    files = {"visible": {}, "thermal": {}}
    for identity, visible, thermal in _identities(dataset):
        for modality, folder, images in (
            ("visible", "Visible", visible),
            ("thermal", "Thermal", thermal),
        ):
            paths = []
            for k, image in enumerate(images):
                relative = f"{folder}/{identity}/{modality[0]}_{identity:04d}_{k:02d}.bmp"
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(root / relative)
                paths.append(relative)
            files[modality][identity] = paths
    identities = sorted(files["visible"])
    (root / "idx").mkdir(parents=True, exist_ok=True)
    for trial in trials:
        order = np.random.default_rng(trial).permutation(identities)
        halves = {
            "train": sorted(order[: len(order) // 2]),
            "test": sorted(order[len(order) // 2 :]),
        }
        for split, members in halves.items():
            for modality in ("visible", "thermal"):
                lines = [f"{p} {i}" for i in members for p in files[modality][int(i)]]
                (root / "idx" / f"{split}_{modality}_{trial}.txt").write_text(
                    "\n".join(lines) + "\n"
                )
    return root


def write_sysu(dataset: SyntheticDataset, root) -> Path:
    """SYSU-MM01 layout: cam<k>/<4-digit id>/<nnnn>.jpg and exp/{train,val,test}_id.txt.

    Visible images are spread over RGB cameras 1, 2, 4, 5, thermal ones over IR cameras 3, 6.
    Identity numbers start at 1 as in the real dataset.
    """
    root = Path(root)
    groups = {"train": [], "val": [], "test": []}
    num_train = len(np.unique(dataset.train_split().visible.ids))
    val = dataset.val_split()
    num_val = 0 if val is None else len(np.unique(val.visible.ids))
    for identity, visible, thermal in _identities(dataset):
        number = identity + 1
        group = (
            "train" if identity < num_train else "val" if identity < num_train + num_val else "test"
        )
        groups[group].append(number)
        for images, cameras in ((visible, RGB_CAMERAS), (thermal, IR_CAMERAS)):
            for k, image in enumerate(images):
                folder = root / f"cam{cameras[k % len(cameras)]}" / f"{number:04d}"
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(folder / f"{k // len(cameras) + 1:04d}.jpg", quality=95)
    (root / "exp").mkdir(parents=True, exist_ok=True)
    for group, numbers in groups.items():
        (root / "exp" / f"{group}_id.txt").write_text(",".join(str(n) for n in numbers) + "\n")
    return root


def write_llcm(dataset: SyntheticDataset, root) -> Path:
    """LLCM layout: train_{vis,nir}/cam<k>/<id>/ listed in idx/train_{vis,nir}.txt (train and
    val identities), test_vis/cam1..9/<id>/ and test_nir/cam1,2,4..9/<id>/ for the test
    identities, idx/test_id.txt. Identity numbers start at 1; images are spread over the
    modality's cameras in turn.
    """
    root = Path(root)
    test_ids = set(np.unique(dataset.test_split().visible.ids).tolist())
    lines = {"visible": [], "thermal": []}
    numbers = []
    for identity, visible, thermal in _identities(dataset):
        number = identity + 1
        testing = identity in test_ids
        if testing:
            numbers.append(number)
        for modality, images in (("visible", visible), ("thermal", thermal)):
            folder, cameras = TEST_FOLDERS[modality]
            if not testing:
                folder = folder.replace("test_", "train_")
            for k, image in enumerate(images):
                relative = f"{folder}/cam{cameras[k % len(cameras)]}/{number:04d}/{k:04d}.jpg"
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(root / relative, quality=95)
                if not testing:
                    lines[modality].append(f"{relative} {identity}")
    (root / "idx").mkdir(parents=True, exist_ok=True)
    for modality, name in INDEX_FILES.items():
        (root / name).write_text("\n".join(lines[modality]) + "\n")
    (root / "idx" / "test_id.txt").write_text(",".join(str(n) for n in numbers) + "\n")
    return root
