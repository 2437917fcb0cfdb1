"""task=prepare: check a dataset root (task.mode=check), prepare it (task.mode=prepare), or
download the SYSU-MM01 authors' split files (task.mode=fetch_splits)."""

from pathlib import Path

from ddag.checkpoints.download import fetch_file
from ddag.config.context import RunContext
from ddag.config.schema import Config
from ddag.data.datasets.sysu import SYSUDataset
from ddag.data.prepare import prepare_sysu
from ddag.data.sysu_splits import MAX_FILE_BYTES, SPLIT_FILES, where_to_get
from ddag.errors import ConfigError, DdagError
from ddag.evaluation.protocols import SYSUOfficialProtocol
from ddag.tasks.steps.data import build_dataset, dataset_root
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def _split_dir(config: Config) -> Path:
    if config.task.split_dir:
        return Path(config.task.split_dir)
    root = dataset_root(config)
    if not root:
        raise ConfigError(
            "task.mode=fetch_splits needs a folder: add dataset=sysu (the files go to "
            "<dataset.root>/exp) or task.split_dir=FOLDER"
        )
    return Path(root) / "exp"


def fetch_splits(config: Config) -> dict:
    """Download rand_perm_cam.mat and test_id.mat once into the split folder, sha256-checked."""
    folder = _split_dir(config)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".ddag-write-check"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"the split files cannot be written to {folder} ({err.strerror or err}); give "
            "task.split_dir=<a folder you can write>"
        ) from None
    base = config.task.splits_url.rstrip("/") + "/"
    written = {}
    for name, digest in SPLIT_FILES.items():
        written[name] = str(fetch_file(base + name, folder / name, digest, MAX_FILE_BYTES))
    log.info(
        "the official SYSU-MM01 split files are in %s; select the protocol with "
        "eval/protocol=[sysu_official_all,sysu_official_indoor]",
        folder,
    )
    return written


def _check_official_splits(report, dataset: SYSUDataset, split_dir: Path) -> None:
    """Doctor findings for the official protocol's split file against the test images."""
    if not (split_dir / "rand_perm_cam.mat").is_file():
        report.add(
            "warning",
            f"no official split file {split_dir / 'rand_perm_cam.mat'} (only the "
            "sysu_official_* protocols need it)",
            where_to_get(split_dir),
        )
        return
    try:
        single = SYSUOfficialProtocol("all", 1, str(split_dir))
        multi = SYSUOfficialProtocol.from_splits("all", 10, single.splits)
    except DdagError as err:
        report.add("error", "the official split file cannot be used", str(err))
        return
    test = dataset.test_split()
    problems = single.check(test)
    if problems:
        report.add(
            "error",
            f"{split_dir / 'rand_perm_cam.mat'} does not number the test images "
            f"({len(problems)} camera/identity pairs differ)",
            "restore the listed folders from the original archive (the file numbers every "
            "image of the published dataset)",
            problems,
        )
        return
    short = [p for p in multi.check(test) if "fewer than" in p]
    if short:
        report.add("warning", "10-shot galleries cannot be drawn", "use shots=1", short)


# Every SYSU-MM01 preset (conf/experiment/ddag_sysu_*, agw_sysu_all, ablations) trains at
# loader=paper's size; packed arrays serve only runs at the size they were packed at.
PRESET_INPUT = (288, 144)


def _warn_on_packing_size(config: Config, dataset) -> None:
    size = (config.loader.height, config.loader.width)
    if config.task.mode == "prepare" and isinstance(dataset, SYSUDataset) and size != PRESET_INPUT:
        log.warning(
            "packing SYSU-MM01 at %dx%d, but the SYSU presets train at %dx%d (loader=paper): "
            "their runs will not use these arrays. Add loader=paper (or the preset, "
            "experiment=ddag_sysu_all) to pack at their size",
            *size,
            *PRESET_INPUT,
        )


def run(config: Config, context: RunContext = RunContext()) -> dict:
    if config.task.mode == "fetch_splits":
        return fetch_splits(config)
    dataset = build_dataset(config, check=False)
    _warn_on_packing_size(config, dataset)
    report = dataset.check(decode=True)
    if report is None:
        log.info("dataset %s needs no preparation", dataset.name)
        return {}
    if isinstance(dataset, SYSUDataset) and not report.errors:
        split_dir = Path(config.task.split_dir) if config.task.split_dir else dataset.root / "exp"
        _check_official_splits(report, dataset, split_dir)
    log.info("dataset report:\n%s", report.text())
    report.raise_on_errors()
    written = {}
    if config.task.mode == "prepare" and isinstance(dataset, SYSUDataset):
        written = prepare_sysu(dataset)
    return {
        "errors": len(report.errors),
        "warnings": len(report.findings) - len(report.errors),
        **written,
    }
