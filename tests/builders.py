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
