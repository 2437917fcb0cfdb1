"""Network steps: the configured network and loss terms, or the network of a checkpoint."""

import dataclasses
from typing import Tuple

from ddag.api import ReIDModel
from ddag.checkpoints.checkpointer import Checkpointer
from ddag.config.context import RunContext
from ddag.config.instantiate import build
from ddag.config.schema import Config
from ddag.engine.phases import split_window
from ddag.evaluation.features import FeatureExtractor
from ddag.evaluation.onnx_engine import onnx_engine
from ddag.losses.objective import Objective
from ddag.models.architecture import check_spec, network_spec
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def build_network(config: Config, num_classes: int):
    """A new network of `config.model`, built like every other component, its backbone
    initialised from `config.init` (if set).

    The spec is checked first against the rule for specs read from files (only `ddag.models`
    classes and plain values), so what trains can be reloaded from its checkpoint.
    """
    spec = network_spec(config.model)
    check_spec(spec)
    network = build(spec, num_classes=num_classes, _convert_="all")
    Checkpointer().initialise(network, config.init)
    return network


def build_loss_terms(config: Config) -> Tuple[dict, dict]:
    """(name -> loss term, name -> EpochWindow) of `config.loss`; a term set to null
    (`loss.graph=null`) is left out, and `from_epoch`/`until_epoch` keys become its window."""
    terms, windows = {}, {}
    for name, node in (config.loss or {}).items():
        if node is None:
            continue
        node, windows[name] = split_window(node, f"loss.{name}")
        terms[name] = build(node)
    return terms, windows


def build_objective(config: Config, network, batch_pairs: int, terms=None) -> Objective:
    """The training objective of `network`: the configured loss terms (or `terms`) with their
    epoch windows, checked over `task.epochs`, the graph branch's noise sized for
    `batch_pairs` pairs and `loader.visible_views` views."""
    terms, windows = build_loss_terms(config) if terms is None else (terms, {})
    objective = Objective(
        network,
        terms,
        batch_pairs=batch_pairs,
        seed=config.seed,
        visible_views=config.loader.visible_views,
        windows=windows,
    )
    epochs = getattr(config.task, "epochs", None)
    if epochs:
        objective.check_epochs(int(epochs))
    for name, window in zip(objective.term_names, objective.windows):
        if not window.always:
            log.info("loss term %s acts in %s", name, window.describe())
    return objective


def network_from_checkpoint(config: Config, context: RunContext):
    """(network, meta, config) of `task.checkpoint`; the returned config is the one to infer
    with.

    The checkpoint's own model and input size are the defaults: the config's image size is
    replaced by the one the checkpoint was trained with, unless the command line sets it (then
    the conflict is reported, since features then differ from training's). `model` settings on
    the command line cannot change a checkpoint that stores its model: they are reported.
    """
    path = config.task.checkpoint
    loaded = Checkpointer().load_network(path, config.model)
    network, meta = loaded.network, loaded.meta
    log.info("loaded %s: %s", path, loaded.report.summary())
    keys = context.keys()
    if loaded.holds_model:
        ignored = [k for k in keys if k == "model" or k.startswith(("model.", "model/"))]
        if ignored:
            log.warning(
                "%s holds its own model; ignored from the command line: %s",
                path,
                ", ".join(ignored),
            )
    size = {"height": meta.input.height, "width": meta.input.width} if meta.input else {}
    current = {k: getattr(config.loader, k) for k in size}
    if size and current != size:
        trained = f"{size.get('height', '?')}x{size.get('width', '?')}"
        forced = [k for k in keys if k in ("loader", "loader.height", "loader.width")]
        if forced:
            log.warning(
                "%s was trained on %s images; %s on the command line makes it see %sx%s, so "
                "its features differ from those of training",
                path,
                trained,
                ", ".join(forced),
                current.get("height", "?"),
                current.get("width", "?"),
            )
        else:
            log.info("input size %s, as the checkpoint was trained", trained)
            config = with_input_size(config, size)
    return network, meta, config


def with_input_size(config: Config, size: dict) -> Config:
    """`config` with the loader's image size replaced by `size` ({height, width}); the dataset
    keys that follow the loader's (`height: ${loader.height}`, resolved at start-up) follow."""
    followed = {
        k: v for k, v in size.items() if (config.dataset or {}).get(k) == getattr(config.loader, k)
    }
    dataset = {**config.dataset, **followed} if config.dataset is not None else None
    return dataclasses.replace(
        config, loader=dataclasses.replace(config.loader, **size), dataset=dataset
    )


def feature_extractor(config: Config, network, during_training: bool = False) -> FeatureExtractor:
    """The test-feature extractor of `network` at the config's input size and `eval` options:
    flipped-image sums stay unnormalised for `eval.distance=inner` (DEEN's test.py);
    `eval.backend=onnxruntime` runs the network's exported graph in ONNX Runtime, except
    during training (the weights change between evaluations)."""
    return FeatureExtractor(
        network,
        config.loader,
        flip=config.eval.flip,
        raw_flip_sums=config.eval.distance == "inner",
        engine=inference_engine(config, network, during_training),
    )


def inference_engine(config: Config, network, during_training: bool = False):
    """The OnnxEngine `eval.backend` asks for (None: MindSpore)."""
    if config.eval.backend != "onnxruntime":
        return None
    if during_training:
        log.info(
            "eval.backend=onnxruntime: evaluations during training stay on MindSpore (the "
            "weights change every epoch); task=eval, extract, search and visualize use it"
        )
        return None
    settings = config.loader
    return onnx_engine(network, settings.height, settings.width, config.runtime.num_threads)


def inference_model(config: Config, context: RunContext) -> Tuple[ReIDModel, Config]:
    """(ReIDModel of `task.checkpoint`, the config to infer with: the checkpoint's input size)."""
    network, _, config = network_from_checkpoint(config, context)
    settings = config.loader
    model = ReIDModel(
        network,
        settings.height,
        settings.width,
        settings.test_batch_size,
        config.eval.flip,
        engine=inference_engine(config, network),
    )
    return model, config
