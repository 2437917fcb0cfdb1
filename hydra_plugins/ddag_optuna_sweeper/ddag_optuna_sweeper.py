"""Hydra's entry point for ddag's Optuna sweeper: `python run.py -m hydra/sweeper=optuna ...`.

Hydra only instantiates sweepers found under the `hydra_plugins` package; the search itself is
`ddag.config.optuna_search.OptunaSearch`.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper

from ddag.config.optuna_search import OptunaSearch


@dataclass
class OptunaSweeperConf:
    """hydra.sweeper.* keys: see OptunaSearch."""

    _target_: str = "hydra_plugins.ddag_optuna_sweeper.ddag_optuna_sweeper.OptunaSweeper"
    objective: str = "val/rank1"
    direction: str = "maximize"
    n_trials: int = 8
    n_jobs: int = 1
    seed: int = 0
    sampler: str = "tpe"
    params: Dict[str, Any] = field(default_factory=dict)
    study_name: Optional[str] = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="ddag"
)


class OptunaSweeper(Sweeper):
    """Asks Optuna for hyper-parameters, launches the jobs, tells it each job's objective."""

    def __init__(self, **settings):
        self.search = OptunaSearch(**settings)

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.search.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self.search.sweep(arguments)
