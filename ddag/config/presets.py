"""What a paper preset trains, to tell its runs from modified ones (`task=table`).

A run counts for a preset's row when the settings that decide its numbers equal the preset's
(composed afresh with the run's seed and RegDB trial): the dataset, input pipeline, model,
loss, optimiser, schedule, evaluation and the training task's length and selection. Where
files live, logging, the device and how often the run saved or evaluated do not count.
"""

from pathlib import Path
from typing import Dict, List, Optional

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ddag.config.schema import register_configs
from ddag.config.stored import CONF_DIR

COMPARED = ("dataset", "loader", "model", "init", "loss", "optimizer", "schedule", "eval", "task")
IGNORED = (
    "dataset.root",
    "dataset.trial",
    "init.weights",
    "init.sha256",
    "task.log_every",
    "task.save_every",
    "task.eval_every",
    "task.resume",
    "task.resume_changes",
)


def preset_settings(preset: str, seed: int, trial: Optional[int]) -> Dict[str, object]:
    """The compared settings of `experiment=<preset>` with this seed and trial, flattened."""
    register_configs()
    overrides = [f"experiment={preset}", f"seed={seed}", "paths.output_dir=unused"]
    if trial is not None:
        overrides.append(f"dataset.trial={trial}")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        composed = compose("config", overrides=overrides)
    return _compared(OmegaConf.to_container(composed, resolve=False))


def run_settings(run_dir: str) -> Optional[Dict[str, object]]:
    """The compared settings a run folder's `.hydra/config.yaml` records (None without one)."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file() or path.stat().st_size > (1 << 20):
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return _compared(data) if isinstance(data, dict) else None


def differences(run: Dict[str, object], preset: Dict[str, object]) -> List[str]:
    """`key: preset -> run` for every compared key whose value differs."""
    keys = sorted(set(run) | set(preset))
    return [
        f"{key}: {preset.get(key, '(absent)')} -> {run.get(key, '(absent)')}"
        for key in keys
        if run.get(key) != preset.get(key)
    ]


def _compared(data: dict) -> Dict[str, object]:
    flat = {}
    for section in COMPARED:
        _flatten(data.get(section), section, flat)
    flat["seed"] = data.get("seed")
    return {k: v for k, v in flat.items() if not k.startswith(IGNORED)}


def _flatten(node, prefix: str, out: Dict[str, object]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(value, f"{prefix}.{key}", out)
    else:
        out[prefix] = node
