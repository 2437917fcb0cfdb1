"""task=score: score precomputed features of any model on the selected protocols.

Reads the SYSU-MM01 authors' per-camera .mat files or task=extract .npz files, checks them
against the protocols (and the official split file), and writes results.json and cmc.png as
task=eval does. Needs neither a dataset tree nor a checkpoint.
"""

from ddag.config.context import RunContext
from ddag.config.schema import Config
from ddag.data.feature_files import check_identity_counts, is_npz_source, read_features
from ddag.errors import ConfigError
from ddag.evaluation.evaluator import evaluate_features
from ddag.evaluation.protocols import SYSUOfficialProtocol
from ddag.tasks.steps.data import build_protocols, check_protocols
from ddag.tasks.steps.report import report_records, rerank_settings
from ddag.tasks.steps.runtime import output_dir
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def _sources(config: Config):
    value = config.task.features
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise ConfigError(
        f"task.features={value!r}: give a path prefix, a .npz file or a list of .npz files"
    )


def _cameras(protocols) -> list:
    """SYSU cameras the protocols read (for the authors' per-camera files)."""
    cameras = set()
    for protocol in protocols:
        fingerprint = protocol.fingerprint()
        if "query_cams" not in fingerprint:
            raise ConfigError(
                f"protocol {protocol.name} is not a SYSU-MM01 protocol, and the authors' .mat "
                "layout holds SYSU-MM01 features only; use .npz features for other datasets"
            )
        cameras |= set(fingerprint["query_cams"]) | set(fingerprint["gallery_cams"])
    return sorted(cameras)


def run(config: Config, context: RunContext = RunContext()) -> dict:
    source = _sources(config)
    protocols = build_protocols(config)
    is_npz = is_npz_source(source)
    features, split = read_features(source, () if is_npz else _cameras(protocols))
    if not is_npz:
        for protocol in protocols:
            if isinstance(protocol, SYSUOfficialProtocol):
                check_identity_counts(split, protocol.splits.cell_lengths, source)
    check_protocols(protocols, split)
    log.info(
        "scoring %d visible and %d thermal feature rows of %s",
        len(split.visible),
        len(split.thermal),
        source,
    )
    identity = {
        "name": config.name,
        "features": source if isinstance(source, str) else list(source),
    }
    records = evaluate_features(
        features,
        split,
        protocols,
        flags={"features": "npz" if is_npz else "sysu_mat"},
        identity=identity,
        rerank=rerank_settings(config),
        distance=config.eval.distance,
    )
    return report_records(records, output_dir(config), "precomputed features")
