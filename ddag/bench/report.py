"""What task=bench prints: the machine's name and the results as an aligned two-column table."""

import platform


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return model


def table(report: dict) -> str:
    """The report as `name  value` lines, one per measurement."""
    rows = []
    if "conv" in report:
        c = report["conv"]
        rows.append(
            ("3x3 conv GFLOP/s (matmul)", f"{c['conv3x3_gflops']:.1f} ({c['matmul_gflops']:.1f})")
        )
    if "metrics" in report:
        for name, t in report["metrics"].items():
            rows.append(
                (f"metrics {name}", f"{t['median']:.3f} (min {t['min']:.3f}, max {t['max']:.3f})")
            )
    if "train" in report:
        for name in ("ddag", "backbone"):
            t = report["train"][name]
            label = report["train"].get("model", name) if name == "ddag" else name
            rows.append(
                (
                    f"{label} train images/s",
                    f"{t['images_per_s']:.1f} (step median "
                    f"{t['step_s']['median']:.3f} s, compile {t['compile_s']:.1f} s)",
                )
            )
            rows.append((f"{label} inference images/s", f"{t['infer_images_per_s']:.1f}"))
        rows.append(
            ("ddag / backbone step time", f"{report['train']['ddag_over_backbone_step']:.3f}")
        )
        ratio = report["train"]["backbone_over_ddag_inference"]
        rows.append(("backbone / ddag inference rate", f"{ratio:.3f}"))
        rows += _profile_rows(report["train"].get("profile"))
        reference = report["train"].get("reference")
        if reference:
            rows.append(
                (
                    f"reference (torch {reference['torch']}) train images/s",
                    f"{reference['reference_images_per_s']:.2f}; ddag "
                    f"{reference['ddag_images_per_s']:.2f} in the same rounds: ratio "
                    f"{reference['ddag_over_reference']:.2f}",
                )
            )
            rows.append(
                (
                    "reference inference images/s",
                    f"{reference['reference_infer_images_per_s']:.1f}; ratio "
                    f"{reference['ddag_over_reference_inference']:.2f}",
                )
            )
    if "infer" in report:
        rows += _infer_rows(report["infer"])
    if "data" in report:
        d = report["data"]
        share = f", {100 * d['share_of_step']:.1f} % of a step" if "share_of_step" in d else ""
        rows.append(("data pipeline images/s", f"{d['images_per_s']:.1f}{share}"))
        reference = d.get("reference")
        if reference:
            rows.append(
                (
                    f"reference DataLoader ({reference['workers']} workers) images/s",
                    f"{reference['reference_images_per_s']:.0f}; ddag "
                    f"{reference['ddag_images_per_s']:.0f} in the same rounds: ratio "
                    f"{reference['ddag_over_reference']:.2f}",
                )
            )
    rows.append(("peak memory MB", f"{report['peak_memory_mb']:.0f}"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)


def _profile_rows(profile) -> list:
    if not profile or "error" in profile:
        return [("profile", profile["error"])] if profile else []
    rows = [
        (
            "profile ms/step (kernels)",
            f"{profile['wall_ms_per_step']:.1f} ({profile['kernel_ms_per_step']:.1f})",
        )
    ]
    rows += [(f"  {name}", f"{ms:.1f} ms") for name, ms in profile["groups_ms_per_step"].items()]
    for conv in profile["convolutions_ms_per_step"][:5]:
        rows.append((f"  conv {conv['kind']} {conv['shapes']}", f"{conv['ms']:.1f} ms"))
    return rows


def _infer_rows(infer: dict) -> list:
    """Images/s per backend and their ratios (task.parts=[infer])."""
    batch = infer["batch"]
    rows = [
        (f"inference {name} images/s ({batch} per call)", f"{rate:.2f}")
        for name, rate in infer["images_per_s"].items()
    ]
    if "onnxruntime_over_mindspore" in infer:
        rows.append(
            (
                "onnxruntime / mindspore inference",
                f"{infer['onnxruntime_over_mindspore']:.2f} (largest feature difference "
                f"{infer['max_feature_difference']:.1e})",
            )
        )
    for name in ("mindspore", "onnxruntime"):
        if f"{name}_over_reference" in infer:
            rows.append(
                (
                    f"{name} / reference (torch {infer['torch']}) inference",
                    f"{infer[f'{name}_over_reference']:.2f}",
                )
            )
    return rows
