"""Where a compiled step spends its time, from MindSpore's profiler: per op type, convolutions by
kind and shape, and the time outside any kernel (Python, launch, host-device work).

MindSpore 2.8 on CPU writes `FRAMEWORK/cpu_op_detail_info_0.csv` (time per op instance),
`FRAMEWORK/cpu_framework_0.txt` (input shapes per op) and `cpu_op_type_info_0.csv`; this reads
the first two and sums per step.
"""

import csv
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List

CONVOLUTION_KINDS = {
    "Conv2D": "forward",
    "Conv2DBackpropInput": "backward (input)",
    "Conv2DBackpropFilter": "backward (weight)",
}
OP_GROUPS = {  # op types shown together in the summary
    "convolution": tuple(CONVOLUTION_KINDS),
    "batchnorm": ("BatchNorm", "BatchNormGrad", "BatchNormGradGrad"),
    "optimizer": ("SGD", "ApplyMomentum", "Adam", "AdamWeightDecay", "FusedSGD"),
    "matmul": ("MatMul", "BatchMatMul"),
}


def profile_steps(step: Callable[[], None], steps: int, folder) -> dict:
    """Run `step` `steps` times under the profiler (after it has been compiled) and summarise."""
    import mindspore as ms
    from mindspore.profiler import ProfilerLevel

    folder = Path(folder)
    profiler = ms.Profiler(output_path=str(folder), profiler_level=ProfilerLevel.Level0)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    wall = time.perf_counter() - start
    profiler.stop()
    profiler.analyse()
    framework = next(folder.glob("**/FRAMEWORK"), None)
    if framework is None:
        return {"error": f"the profiler wrote no FRAMEWORK folder under {folder}"}
    return summarise(framework, steps, wall)


def _op_shapes(framework: Path) -> Dict[str, List[str]]:
    """op name (`Conv2D-op12`) -> its input shapes, from cpu_framework_*.txt."""
    shapes = {}
    for path in framework.glob("cpu_framework_*.txt"):
        for line in path.read_text().splitlines():
            fields = line.rstrip(";").split(";")
            if len(fields) >= 3:
                inputs = [f.split(":", 1)[1] for f in fields[3:] if f.startswith("input_")]
                shapes[fields[1]] = [s for s in inputs if s.startswith("[")]
    return shapes


def summarise(framework: Path, steps: int, wall_s: float) -> dict:
    """Per-step milliseconds by op type and group, the convolutions by shape, and the rest."""
    by_type: Dict[str, float] = defaultdict(float)
    convolutions: Dict[tuple, float] = defaultdict(float)
    shapes = _op_shapes(framework)
    for path in framework.glob("cpu_op_detail_info_*.csv"):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                ms_per_step = float(row["op_total_time(ms)"]) / steps
                by_type[row["op_type"]] += ms_per_step
                if row["op_type"] in CONVOLUTION_KINDS:
                    key = (
                        CONVOLUTION_KINDS[row["op_type"]],
                        " x ".join(shapes.get(row["op_name"], [])[:2]),
                    )
                    convolutions[key] += ms_per_step
    kernels = sum(by_type.values())
    wall = 1000 * wall_s / steps
    groups = {name: sum(by_type.get(t, 0.0) for t in types) for name, types in OP_GROUPS.items()}
    grouped = {t for types in OP_GROUPS.values() for t in types}
    groups["other kernels"] = sum(v for t, v in by_type.items() if t not in grouped)
    return {
        "wall_ms_per_step": wall,
        "kernel_ms_per_step": kernels,
        # Kernels may overlap on several threads, so this can be negative; positive values are
        # time in no kernel at all: Python, graph launch, copies between host and device.
        "outside_kernels_ms_per_step": wall - kernels,
        "groups_ms_per_step": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "op_types_ms_per_step": dict(sorted(by_type.items(), key=lambda kv: -kv[1])),
        "convolutions_ms_per_step": [
            {"kind": kind, "shapes": shape, "ms": ms}
            for (kind, shape), ms in sorted(convolutions.items(), key=lambda kv: -kv[1])
        ],
    }
