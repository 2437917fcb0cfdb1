"""Dataset readers and the doctor (ddag/data): packed arrays follow their images, RegDB identities
match between modalities, EXIF orientation is applied.

Every file is made here. Cases that would allocate gigabytes if a check regressed run in a
child process under a memory limit (tests/bounded.py), with a time bound.
"""

import numpy as np
from PIL import Image

# 11. Packed SYSU arrays follow the images ----------------------------------------------------


def test_packed_sysu_arrays_are_not_used_after_the_images_changed(tmp_path):
    from ddag.data.datasets.sysu import SYSUDataset
    from ddag.data.prepare import prepare_sysu
    from tests.builders import sysu_tree

    root = sysu_tree(tmp_path / "SYSU")
    prepare_sysu(SYSUDataset(str(root), height=32, width=16))
    assert SYSUDataset(str(root), height=32, width=16).prepared_split() is not None
    for image in sorted((root / "cam1" / "0001").iterdir()):
        Image.new("RGB", (16, 32), (255, 0, 0)).save(image)
    assert SYSUDataset(str(root), height=32, width=16).prepared_split() is None
    split = SYSUDataset(str(root), height=32, width=16).train_split()
    first = [i for i, n in enumerate(split.visible.names) if "cam1/0001" in n][0]
    assert split.visible.load(first)[..., 0].min() > 200  # the new, red image


# 12. The doctor refuses RegDB test identities that differ between modalities ------------------


def test_the_regdb_doctor_refuses_test_identities_missing_from_one_modality(tmp_path):
    from ddag.data.datasets.regdb import RegDBDataset
    from tests.builders import regdb_tree

    root = regdb_tree(tmp_path / "RegDB")
    index = root / "idx" / "test_thermal_1.txt"
    lines = index.read_text().splitlines()
    dropped = lines[0].split()[1]
    index.write_text("\n".join(line for line in lines if line.split()[1] != dropped) + "\n")
    report = RegDBDataset(str(root)).check()
    assert any(f"label {dropped} (visible only)" in f.items for f in report.errors), report.text()


# 13. EXIF orientation --------------------------------------------------------------------------


def test_the_exif_orientation_of_a_jpeg_is_applied(tmp_path):
    from ddag.data.datasets.base import read_rgb

    pixels = np.zeros((20, 10, 3), np.uint8)
    pixels[:5] = 255  # white top rows
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    image.save(tmp_path / "turned.jpg", exif=exif, quality=100)
    shown = read_rgb(str(tmp_path / "turned.jpg"))
    assert shown.shape == (10, 20, 3)
    assert shown[:, -5:].mean() > 200 and shown[:, :5].mean() < 50  # the white band is right
