"""Index files of the RegDB and LLCM layouts: one `<relative path> <label>` line per image."""

import os
import re
from pathlib import Path
from typing import Dict, List, Tuple

from ddag.data.datasets.base import read_text
from ddag.errors import DatasetError

# ASCII digits only ("²" passes str.isdigit but not int()), at most 9 of them.
LABEL = re.compile(r"-?[0-9]{1,9}")


def read_index_file(path: Path, dataset: str, hint: str) -> List[Tuple[str, int]]:
    """(relative path, label) per line of an index file.

    Paths must stay inside the dataset root: absolute paths and paths climbing out with ".."
    are refused (an index file is data, it must not make us read arbitrary files).
    """
    if not path.is_file():
        others = sorted(p.name for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        if others:  # the dataset is there, one file of it is not: name that file's fix
            raise DatasetError(
                f"{dataset} index file missing: {path}, while {path.parent} holds "
                f"{len(others)} other index files ({', '.join(others[:3])}, ...). Restore "
                f"{path.name} from the {dataset} release (lines '<relative path> <label>'), "
                "or choose a trial or split whose files are there"
            )
        raise DatasetError(f"{dataset} index file missing: {path}. {hint}")
    text = read_text(path)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not LABEL.fullmatch(parts[1]):
            raise DatasetError(f"{path}:{number}: expected '<relative path> <label>', got {line!r}")
        if not is_inside(parts[0]):
            raise DatasetError(
                f"{path}:{number}: {parts[0]!r} points outside the dataset root; index paths "
                "must be relative to the root, like Visible/1/female_back_v_00001_1.bmp"
            )
        rows.append((parts[0], int(parts[1])))
    if not rows:
        raise DatasetError(f"{dataset} index file is empty: {path}")
    return rows


def is_inside(relative: str) -> bool:
    """Whether a path from an index file stays below the folder it is relative to."""
    normal = os.path.normpath(relative.replace("\\", "/"))
    return not (os.path.isabs(normal) or normal == ".." or normal.startswith("../"))


def unmatched_identities(visible: List[int], thermal: List[int]) -> List[str]:
    """Identities listed for only one modality, as 'label N (visible only)' lines."""
    only_visible = sorted(set(visible) - set(thermal))
    only_thermal = sorted(set(thermal) - set(visible))
    return [f"label {i} (visible only)" for i in only_visible] + [
        f"label {i} (thermal only)" for i in only_thermal
    ]


def images_in_both(visible: List[Tuple[str, int]], thermal: List[Tuple[str, int]]) -> List[str]:
    """Image paths that both modalities' index rows list (one file cannot be both a visible and
    an infrared image: a thermal index copied from the visible one)."""
    return sorted({path for path, _ in visible} & {path for path, _ in thermal})


def shared_label_mapping(
    visible: List[Tuple[str, int]], thermal: List[Tuple[str, int]], where: str, fix: str
) -> Dict[int, int]:
    """One training label -> 0..N-1 mapping for both modalities' index rows; DatasetError when
    the two list different identities (a label must mean the same person in both)."""
    v_ids, t_ids = [label for _, label in visible], [label for _, label in thermal]
    unmatched = unmatched_identities(v_ids, t_ids)
    if unmatched:
        raise DatasetError(
            f"{where} list different identities for the two modalities ({len(unmatched)} "
            f"unmatched: {', '.join(unmatched[:5])}). A training label must mean the same "
            f"person in both; {fix}"
        )
    both = images_in_both(visible, thermal)
    if both:
        raise DatasetError(
            f"{where} list {len(both)} image(s) for both modalities (first: {both[0]}): one file "
            f"cannot be a visible and an infrared image (is one index file a copy of the "
            f"other?); {fix}"
        )
    return {label: i for i, label in enumerate(sorted(set(v_ids)))}
