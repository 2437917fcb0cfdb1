"""What a task may know about how it was started, beyond its configuration.

Hydra keeps the command line's overrides and the chosen config-group options in global state;
`RunContext.from_hydra()`, called by run.py alone, reads them once and hands them to the task,
so that no task reads global Hydra state (and tests pass a context of their own).
"""

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml
from omegaconf import OmegaConf


@dataclasses.dataclass(frozen=True)
class RunContext:
    """How this run was started.

    Attributes:
        overrides: the command line's overrides as written (`loader.height=144`, `+a=b`).
        choices: {config group: chosen option} (`model/backbone: resnet50`).
        config_record: the run folder's `.hydra/config.yaml`, or None (no Hydra run).
    """

    overrides: Tuple[str, ...] = ()
    choices: Dict[str, str] = dataclasses.field(default_factory=dict)
    config_record: Optional[Path] = None

    @classmethod
    def from_hydra(cls) -> "RunContext":
        """The context of the running Hydra job (an empty one outside a Hydra run)."""
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return cls()
        hydra = HydraConfig.get()
        choices = {
            group: str(option)
            for group, option in hydra.runtime.choices.items()
            if not group.startswith("hydra") and option is not None and "_schema" not in str(option)
        }
        record = None
        if hydra.output_subdir:
            record = Path(hydra.runtime.output_dir) / str(hydra.output_subdir) / "config.yaml"
        return cls(tuple(hydra.overrides.task), choices, record)

    def keys(self) -> List[str]:
        """Keys and groups the user set on the command line (`loader.height`, `model/backbone`)."""
        return [o.lstrip("+~").split("=", 1)[0] for o in self.overrides]

    def values(self) -> dict:
        """{key: value} of the `key=value` command-line overrides (a sweep job's
        hyper-parameters); numbers and booleans as such, anything else as its text."""
        values = {}
        for line in self.overrides:
            key, sep, text = line.lstrip("+~").partition("=")
            if not sep or key.startswith("hydra"):
                continue
            value = yaml.safe_load(text) if text else text
            values[key] = value if isinstance(value, (bool, int, float, str)) else text
        return values

    def record(self, config: dict) -> None:
        """Rewrite the run folder's `.hydra/config.yaml` with `config` (a resumed run's own
        settings: Hydra wrote the composed defaults of the bare resume command there)."""
        if self.config_record is None:
            return
        self.config_record.parent.mkdir(parents=True, exist_ok=True)
        self.config_record.write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
