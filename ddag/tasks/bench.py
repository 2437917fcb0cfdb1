"""task=bench: timings that belong in a benchmark, not in tests.

Every measurement excludes warm-up calls and reports min / median / max over repetitions:
- conv: GFLOP/s of a 64->64 3x3 convolution next to a matmul's, with a warning when the
  convolution is far slower (the slow CPU convolution of MindSpore 2.9.0 / 2.10.0);
- metrics: a SYSU-sized (3803 x 301, 10 trials) and a RegDB-sized (2060 x 2060) evaluation,
  and the official SYSU-MM01 protocol's 10 trials (gallery selection and metrics) on a
  SYSU-sized test set, single-shot (301) and 10-shot (3010 gallery images);
- train: compile time and images/s of the full DDAG step and of the bare backbone step
  (id loss only, no attention branches) at the configured model, image size and batch, and
  images/s of both embeddings at the test batch size, timed in alternation;
- data: images/s of the training pipeline alone, and its share of a step;
- profile: MindSpore's profiler over a few DDAG steps: milliseconds per step by op type,
  convolutions by kind and shape, optimizer, BatchNorm, and the time outside any kernel;
- infer: images/s of the configured network's test-time forward at `loader.test_batch_size`
  in MindSpore and in ONNX Runtime (`eval.backend=onnxruntime`'s engine), and with
  `task.reference` the PyTorch reference in eager mode, in `task.rounds` alternated rounds.

With `task.reference=<checkout of mangye16/DDAG>`, the PyTorch reference step (same batch and
image size) is timed in rounds alternating with the DDAG step, in a separate process
(`task.reference_python`, default this Python; it needs torch), and the ratio is reported.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np

from ddag.bench import reference_step
from ddag.bench.kernels import bench_conv, bench_metrics
from ddag.bench.measure import bench_data, bench_inference, run_reference
from ddag.bench.report import machine, table
from ddag.bench.timing import PROGRESS_SECONDS
from ddag.bench.timing import repeat_timed as _repeat
from ddag.config.context import RunContext
from ddag.config.schema import Config
from ddag.data.loader import Batch
from ddag.engine.op_profile import profile_steps
from ddag.errors import ConfigError
from ddag.losses.terms import CrossEntropy
from ddag.models.architecture import build_network
from ddag.models.ddag import VISIBLE, EmbeddingNet
from ddag.tasks.steps.data import build_dataset, training_data
from ddag.tasks.steps.networks import build_network as build_configured_network
from ddag.tasks.steps.networks import build_objective
from ddag.tasks.steps.runtime import output_dir, setup
from ddag.tasks.steps.training import build_train_step
from ddag.utils.logging import get_logger

log = get_logger(__name__)

PARTS = ("conv", "metrics", "train", "data", "profile", "infer")
RESNET50_SHAPE = ([3, 4, 6, 3], [64, 128, 256, 512])  # (layers, widths) of the reference's


def _objective(config, num_classes, bare: bool, batch_pairs: int):
    if bare:
        model = dict(config.model)
        model.update(part_attention=None, graph_attention=None)
        network = build_network(model, num_classes)
        return build_objective(config, network, batch_pairs, {"id": CrossEntropy("logits")})
    return build_objective(config, build_configured_network(config, num_classes), batch_pairs)


def _step_runner(config, objective, batch: Batch):
    """A function running one training step of `objective` on `batch`, built as training builds
    it (`build_train_step`: the configured optimiser, mixed precision and compilation) and fed
    the objective's own per-step inputs (DDAG: graph weight and dropout noise)."""
    # The optimizer reads its rate at the step count: give it more steps than the bench takes.
    calls = (config.task.repeats + config.task.warmup + 2) * (config.task.rounds + 2)
    step, _, _ = build_train_step(config, objective, np.ones(10 * calls, np.float32))
    # With epoch windows (PMT's phases), the step of the phase that computes the most terms.
    inputs = objective.step_inputs(0, objective.fullest_epoch())
    objective.set_train(True)

    def run():
        step(*batch, *inputs)[0].asnumpy()

    return run


def _bench_objective(run, images_per_step: int, repeats: int, warmup: int) -> dict:
    start = time.perf_counter()
    log.info("  train step: first call (compiles the step)...")
    run()
    first = time.perf_counter() - start
    log.info("  train step: compiled and run once in %.1f s", first)
    timing = _repeat(run, repeats, warmup, "train step")
    return {
        "first_call_s": first,
        "compile_s": first - timing["median"],
        "step_s": timing,
        "images_per_s": images_per_step / timing["median"],
    }


def _reference_python(config) -> str:
    return config.task.reference_python or sys.executable


def _is_deen(config) -> bool:
    """Whether the configured model expands embeddings (DEEN's reference then times it)."""
    return bool((config.model or {}).get("expansion"))


def _is_pmt(config) -> bool:
    """Whether the configured backbone is a ViT (PMT's reference then times it)."""
    backbone = (config.model or {}).get("backbone") or {}
    return str(backbone.get("_target_", "")).endswith("VisionTransformer")


def check_reference(config) -> None:
    """Before any timing: the checkout has the reference code, its Python imports torch."""
    checkout, python = Path(config.task.reference), _reference_python(config)
    if _is_deen(config):
        needed, owner = "model.py", "the DEEN/ folder of ZYK100/LLCM"
    elif _is_pmt(config):
        needed, owner = "model/make_model.py", "the Pytorch-PMT-VI-ReID/ folder of hulu88/PMT"
    else:
        needed, owner = "model_main.py", "a checkout of mangye16/DDAG"
    if not (checkout / needed).is_file():
        raise ConfigError(f"task.reference={checkout}: no {needed} there; give {owner}")
    probe = subprocess.run([python, "-c", "import torch, numpy"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise ConfigError(
            f"the reference step needs torch and numpy under {python} "
            f"(task.reference_python): {(probe.stderr.strip().splitlines() or ['?'])[-1]}"
        )


def bench_reference(config, run, batch, repeats: int, warmup: int) -> dict:
    """The reference PyTorch step and the DDAG step, timed in `task.rounds` alternating rounds.

    Each round times `repeats` DDAG steps, then starts the reference in its own process for
    `repeats` steps after `warmup` (its model is built afresh each round), so a drift of the
    machine's speed affects both sides alike.
    """
    checkout, python = Path(config.task.reference), _reference_python(config)
    pairs, height, width = len(batch.thermal), int(batch[0].shape[2]), int(batch[0].shape[3])
    num_ids = config.loader.num_ids
    if _is_deen(config):
        stages = (config.model.get("backbone") or {}).get("num_stages", 4)
        script = Path(reference_step.__file__).with_name("deen_reference_step.py")
        command = [python, str(script), "--ref", str(checkout)]
        command += ["--dataset", "regdb" if stages == 3 else "sysu"]
    elif _is_pmt(config):
        script = Path(reference_step.__file__).with_name("pmt_reference_step.py")
        command = [python, str(script), "--ref", str(checkout)]
    else:
        command = [python, reference_step.__file__, "--ref", str(checkout)]
        command += ["--infer-batch", f"{config.loader.test_batch_size}"]
    command += ["--ids", str(num_ids), "--instances", str(pairs // num_ids)]
    command += ["--height", str(height), "--width", str(width)]
    command += ["--steps", str(repeats), "--warmup", str(max(1, warmup))]
    ours, theirs, inference, version = [], [], [], None
    for index in range(config.task.rounds):
        log.info("  reference comparison: round %d/%d", index + 1, config.task.rounds)
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            ours.append(time.perf_counter() - start)
        result = run_reference(command, python)
        theirs += result["step_s"]
        inference.append(result["infer_images_per_s"])
        version = result["torch"]
        log.info(
            "round %d: ddag %.3f s, reference %.3f s per step",
            index + 1,
            statistics.median(ours[-repeats:]),
            statistics.median(result["step_s"]),
        )
    ours_rate = 2 * pairs / statistics.median(ours)
    theirs_rate = 2 * pairs / statistics.median(theirs)
    return {
        "torch": version,
        "rounds": config.task.rounds,
        "ddag_images_per_s": ours_rate,
        "reference_images_per_s": theirs_rate,
        "ddag_over_reference": ours_rate / theirs_rate,
        "reference_infer_images_per_s": statistics.median(inference),
        "ddag_step_s": ours,
        "reference_step_s": theirs,
    }


def bench_train(config, batch: Batch, repeats: int, warmup: int, parts=("train",)) -> dict:
    pairs = len(batch.thermal)  # the visible columns hold loader.visible_views images per pair
    objectives = {
        name: _objective(config, 32, bare, pairs)
        for name, bare in (("ddag", False), ("backbone", True))
    }
    runners = {name: _step_runner(config, o, batch) for name, o in objectives.items()}
    images = (1 + config.loader.visible_views) * pairs
    results = {
        name: _bench_objective(run, images, repeats, warmup) for name, run in runners.items()
    }
    if "profile" in parts:
        folder = output_dir(config) / "profile"
        results["profile"] = profile_steps(runners["ddag"], max(1, repeats), folder)
    reference = None
    if config.task.reference:
        reference = bench_reference(config, runners["ddag"], batch, repeats, warmup)
    # Inference at the test batch size (the training batch can be much smaller).
    size = config.loader.test_batch_size
    images = ms.Tensor(np.resize(batch[0].asnumpy(), (size,) + tuple(batch[0].shape[1:])))
    rates = bench_inference({n: o.network for n, o in objectives.items()}, images, repeats, warmup)
    for name, rate in rates.items():
        results[name]["infer_images_per_s"] = rate
    if reference is not None:
        reference["ddag_over_reference_inference"] = (
            rates["ddag"] / reference["reference_infer_images_per_s"]
        )
        results["reference"] = reference
    results["ddag_over_backbone_step"] = (
        results["ddag"]["step_s"]["median"] / results["backbone"]["step_s"]["median"]
    )
    results["backbone_over_ddag_inference"] = rates["backbone"] / rates["ddag"]
    return results


def bench_infer(config, repeats: int, warmup: int) -> dict:
    """Images/s of the test-time forward in MindSpore, ONNX Runtime and (with task.reference)
    the PyTorch reference, `task.rounds` rounds, each timing every backend in turn so a drift
    of the machine's speed affects all alike; the largest feature difference of the two
    backends on the timed batch."""
    from ddag.evaluation.onnx_engine import onnx_engine

    size, height, width = config.loader.test_batch_size, config.loader.height, config.loader.width
    network = build_configured_network(config, 32)
    network.set_train(False)
    images = np.random.default_rng(0).normal(size=(size, 3, height, width)).astype(np.float32)
    embed, tensor = EmbeddingNet(network, VISIBLE), ms.Tensor(images)
    runners = {"mindspore": lambda: tuple(t.asnumpy() for t in embed(tensor))}
    engine = onnx_engine(
        network, height, width, config.runtime.num_threads, output_dir(config) / "onnx"
    )
    if engine is not None:
        runners["onnxruntime"] = lambda: engine(images, VISIBLE)
    outputs = {}
    for name, call in runners.items():
        log.info("  inference: %s, %d warm-up call(s)", name, max(1, warmup))
        for _ in range(max(1, warmup)):
            outputs[name] = call()
    command = None
    if config.task.reference:
        command = [_reference_python(config), reference_step.__file__, "--infer-only"]
        command += ["--ref", config.task.reference, "--infer-batch", f"{size}"]
        command += ["--height", str(height), "--width", str(width)]
        command += ["--steps", str(repeats), "--warmup", str(max(1, warmup))]
        threads = config.runtime.num_threads or os.cpu_count() or 1
        command += ["--threads", f"{threads}"]
        backbone = config.model.get("backbone") or {}
        shape = (list(backbone.get("layers") or []), list(backbone.get("widths") or []))
        if shape != RESNET50_SHAPE:
            log.warning(
                "the reference network is the paper's ResNet-50 DDAG; this model is another: "
                "for a like-for-like ratio use model/backbone=resnet50"
            )
    times = {name: [] for name in [*runners, *(["reference"] if command else [])]}
    torch_version = None
    for index in range(config.task.rounds):
        for name, call in runners.items():
            times[name] += [timed_seconds(call) for _ in range(repeats)]
        if command:
            result = run_reference(command, _reference_python(config))
            times["reference"] += result["infer_s"]
            torch_version = result["torch"]
        log.info(
            "  inference round %d/%d: %s",
            index + 1,
            config.task.rounds,
            ", ".join(f"{n} {size / statistics.median(t):.2f} images/s" for n, t in times.items()),
        )
    rates = {name: size / statistics.median(t) for name, t in times.items()}
    report = {"batch": size, "images_per_s": rates, "seconds": times, "torch": torch_version}
    if "onnxruntime" in rates:
        report["onnxruntime_over_mindspore"] = rates["onnxruntime"] / rates["mindspore"]
        report["max_feature_difference"] = float(
            max(np.abs(a - b).max() for a, b in zip(outputs["mindspore"], outputs["onnxruntime"]))
        )
    if "reference" in rates:
        for name in runners:
            report[f"{name}_over_reference"] = rates[name] / rates["reference"]
    return report


REFERENCE_LOADER_WORKERS = 4  # the references' DataLoader(num_workers=4)
MIRRORED_AUGMENTATIONS = {  # loader.augment keys -> what reference_data.py applies
    "pad_crop_flip": None,  # always
    "random_erasing": "random_erasing",
    "channel_erasing": "channel_aug",
    "channel_exchange": "channel_aug",
    "channel_adaptive_gray": "channel_aug",
}


def bench_reference_data(config, pipeline, repeats: int) -> dict:
    """ddag's training pipeline and a torch DataLoader with the references' transforms and 4
    workers (`ddag/bench/reference_data.py`), images/s in `task.rounds` alternated rounds."""
    keys = list(config.loader.augment)
    unmirrored = [k for k in keys if k not in MIRRORED_AUGMENTATIONS]
    if unmirrored:
        log.warning("the reference loader does not apply %s: its rate is without them", unmirrored)
    augment = sorted({MIRRORED_AUGMENTATIONS[k] for k in keys if MIRRORED_AUGMENTATIONS.get(k)})
    python = _reference_python(config)
    script = Path(reference_step.__file__).with_name("reference_data.py")
    loader = config.loader
    command = [python, str(script), "--height", f"{loader.height}", "--width", f"{loader.width}"]
    command += [
        "--padding",
        f"{loader.padding}",
        "--batch",
        f"{loader.num_ids * loader.num_instances}",
    ]
    command += ["--batches", f"{max(2, repeats)}", "--workers", f"{REFERENCE_LOADER_WORKERS}"]
    command += ["--augment", *augment]
    ours, theirs, version = [], [], None
    for index in range(config.task.rounds):
        ours.append(bench_data(pipeline, max(2, repeats))["images_per_s"])
        result = run_reference(command, python)
        theirs.append(result["images_per_s"])
        version = result["torch"]
        log.info(
            "  data round %d/%d: ddag %.0f, reference DataLoader (%d workers) %.0f images/s",
            index + 1,
            config.task.rounds,
            ours[-1],
            REFERENCE_LOADER_WORKERS,
            theirs[-1],
        )
    return {
        "torch": version,
        "workers": REFERENCE_LOADER_WORKERS,
        "augment": augment,
        "ddag_images_per_s": statistics.median(ours),
        "reference_images_per_s": statistics.median(theirs),
        "ddag_over_reference": statistics.median(ours) / statistics.median(theirs),
    }


def timed_seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def run(config: Config, context: RunContext = RunContext()) -> dict:
    setup(config)
    repeats, warmup = config.task.repeats, config.task.warmup
    parts = set(config.task.parts)
    if parts - set(PARTS):
        raise ConfigError(f"task.parts: unknown {sorted(parts - set(PARTS))}; choose from {PARTS}")
    if config.task.reference:
        check_reference(config)
        if "infer" in parts and (_is_deen(config) or _is_pmt(config)):
            raise ConfigError(
                "task.parts=[infer] compares with the DDAG reference (mangye16/DDAG) only; for "
                "DEEN or PMT, task.parts=[train] with task.reference times their inference too"
            )
    report = {"mindspore": ms.__version__, "machine": machine(), "parts": sorted(parts)}
    log.info(
        "benchmark parts %s: %d warm-up and %d timed runs each; progress every %.0f s",
        ", ".join(p for p in PARTS if p in parts),
        warmup,
        repeats,
        PROGRESS_SECONDS,
    )
    if "conv" in parts:
        report["conv"] = bench_conv(repeats, warmup)
    if "metrics" in parts:
        report["metrics"] = bench_metrics(repeats, warmup)
    if parts & {"train", "data", "profile"}:
        _, pipeline = training_data(config, build_dataset(config))
        if "data" in parts:
            report["data"] = bench_data(pipeline, repeats + warmup)
            if config.task.reference:
                report["data"]["reference"] = bench_reference_data(config, pipeline, repeats)
        if parts & {"train", "profile"}:
            batch = Batch(*next(pipeline.create_tuple_iterator(num_epochs=1)))
            report["train"] = bench_train(config, batch, repeats, warmup, parts)
            report["train"]["model"] = context.choices.get("model", "ddag")
            if "data" in report:
                step_rate = report["train"]["ddag"]["images_per_s"]
                report["data"]["share_of_step"] = step_rate / report["data"]["images_per_s"]
    if "infer" in parts:
        report["infer"] = bench_infer(config, repeats, warmup)
    report["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    path = output_dir(config) / "bench.json"
    path.write_text(json.dumps(report, indent=2))
    log.info("benchmark (%s), written to %s\n%s", report["machine"], path, table(report))
    return report
