"""Hyper-parameter search with Optuna behind Hydra's sweeper interface.

Search dimensions use Hydra's sweep syntax, on the command line or in `hydra.sweeper.params`:
`choice(a, b, ...)` and `range(start, stop[, step])` are categorical, `interval(low, high)` is
a float drawn uniformly (`tag(log, interval(...))` log-uniformly, `tag(int, interval(...))` an
integer). Every other override is passed to each job unchanged. Each job is one training run;
the number it returns under `objective` (e.g. `val/rank1`, the model-selection metric of
`task.selection=val`) is what the study maximises (or minimises). A job that fails, or
returns no such number, is recorded as a failed trial. `optimization_results.yaml` in the sweep
folder lists every trial and the best one.
"""

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf

from ddag.errors import ConfigError
from ddag.evaluation.results import METRICS
from ddag.utils.logging import get_logger

log = get_logger(__name__)

DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random")
RESULTS_FILE = "optimization_results.yaml"


def _distribution(override: Override):
    """(kind, values) of a sweep override: ("categorical", [...]), ("float", (lo, hi, log)),
    ("int", (lo, hi, log))."""
    sweep = override.value()
    if isinstance(sweep, ChoiceSweep):
        return "categorical", list(sweep.list)
    if isinstance(sweep, RangeSweep):
        return "categorical", list(override.sweep_iterator())
    if isinstance(sweep, IntervalSweep):
        log_scale = "log" in sweep.tags
        if "int" in sweep.tags:
            return "int", (int(sweep.start), int(sweep.end), log_scale)
        return "float", (float(sweep.start), float(sweep.end), log_scale)
    raise ConfigError(f"{override.input_line}: use choice(...), range(...) or interval(...)")


def _suggest(trial, name: str, distribution):
    kind, values = distribution
    if kind == "categorical":
        return trial.suggest_categorical(name, values)
    low, high, log_scale = values
    if kind == "int":
        return trial.suggest_int(name, low, high, log=log_scale)
    return trial.suggest_float(name, low, high, log=log_scale)


def in_percent(objective: str) -> bool:
    """Whether the objective is a retrieval metric (a fraction in results, % in tables)."""
    return objective.rpartition("/")[2] in METRICS


def _objective_value(job, objective: str) -> Optional[float]:
    """The job's objective, retrieval metrics in percent as every table shows them."""
    if job.status != JobStatus.COMPLETED or not isinstance(job.return_value, dict):
        return None
    value = job.return_value.get(objective)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return 100.0 * float(value) if in_percent(objective) else float(value)


class OptunaSearch:
    """The sweep: `n_trials` trials, `n_jobs` launched together, seeded sampler.

    Args:
        objective: key of the job's returned summary to optimise (train: `val/rank1`, ...).
        direction: "maximize" or "minimize".
        n_trials: number of jobs in all.
        n_jobs: trials asked and launched together (useful with a parallel launcher).
        seed: seed of the sampler, so a sweep can be repeated.
        sampler: "tpe" (Optuna's default) or "random".
        params: search dimensions, key -> sweep string (e.g. `interval(0.01, 0.2)`).
        study_name: name of the Optuna study (default: the job name).
    """

    def __init__(
        self,
        objective: str = "val/rank1",
        direction: str = "maximize",
        n_trials: int = 8,
        n_jobs: int = 1,
        seed: int = 0,
        sampler: str = "tpe",
        params: Optional[Dict[str, Any]] = None,
        study_name: Optional[str] = None,
    ):
        if direction not in DIRECTIONS:
            raise ConfigError(f"hydra.sweeper.direction={direction!r}; choose one of {DIRECTIONS}")
        if sampler not in SAMPLERS:
            raise ConfigError(f"hydra.sweeper.sampler={sampler!r}; choose one of {SAMPLERS}")
        if n_trials < 1 or n_jobs < 1:
            raise ConfigError("hydra.sweeper.n_trials and n_jobs must be >= 1")
        self.objective, self.direction = objective, direction
        self.n_trials, self.n_jobs, self.seed, self.sampler = n_trials, n_jobs, seed, sampler
        self.params = dict(params or {})
        self.study_name = study_name

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def _split(self, arguments: Sequence[str]):
        """(search dimensions, fixed overrides) from the config's params and the command line."""
        lines = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        dimensions, fixed = {}, []
        for override in OverridesParser.create().parse_overrides(lines):
            if override.is_sweep_override():
                dimensions[override.get_key_element()] = _distribution(override)
            else:
                fixed.append(override.input_line)
        if not dimensions:
            raise ConfigError(
                "hydra/sweeper=optuna has nothing to search: give e.g. "
                "'optimizer.lr=interval(0.01,0.2)' or hydra.sweeper.params"
            )
        return dimensions, fixed

    def sweep(self, arguments: List[str]) -> Dict[str, Any]:
        import optuna

        dimensions, fixed = self._split(arguments)
        samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
        study = optuna.create_study(
            study_name=self.study_name or str(self.config.hydra.job.name),
            direction=self.direction,
            sampler=samplers[self.sampler](seed=self.seed),
        )
        log.info(
            "Optuna: %d trials over %s, %s %s",
            self.n_trials,
            list(dimensions),
            self.direction,
            self.objective,
        )
        done = 0
        while done < self.n_trials:
            trials = [study.ask() for _ in range(min(self.n_jobs, self.n_trials - done))]
            chosen = [{k: _suggest(t, k, d) for k, d in dimensions.items()} for t in trials]
            overrides = [tuple(fixed + [f"{k}={v}" for k, v in c.items()]) for c in chosen]
            jobs = self.launcher.launch(overrides, initial_job_idx=done)
            for trial, values, job in zip(trials, chosen, jobs):
                value = _objective_value(job, self.objective)
                if value is None:
                    log.warning(
                        "trial %d (%s) gave no %s: failed", trial.number, values, self.objective
                    )
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, value)
                    log.info(
                        "trial %d %s: %s=%.2f%s",
                        trial.number,
                        values,
                        self.objective,
                        value,
                        " %" if in_percent(self.objective) else "",
                    )
            done += len(trials)
        return self._report(study)

    def _report(self, study) -> Dict[str, Any]:
        import optuna

        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        results = {
            "objective": self.objective,
            "unit": "%" if in_percent(self.objective) else "as returned",
            "direction": self.direction,
            "trials": [
                {"number": t.number, "params": t.params, "value": t.value, "state": t.state.name}
                for t in study.trials
            ],
        }
        if complete:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial=best.number)
            log.info(
                "best trial %d: %s = %.2f%s with %s",
                best.number,
                self.objective,
                best.value,
                " %" if in_percent(self.objective) else "",
                best.params,
            )
        else:
            log.error("no trial gave %s; see the jobs' FAILED files", self.objective)
        path = Path(str(self.config.hydra.sweep.dir)) / RESULTS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), path)
        return results
