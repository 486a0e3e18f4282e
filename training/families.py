"""The model families, listed once: what `tailor train|evaluate|sweep|score|promote` dispatch through.

A family is a name and a handful of entry points, named as `module:attribute` so that listing the
families (for `--help`, or the registry's gate) imports nothing heavy:

- `config`: the typed config class; `configs/<name>.yaml` holds its values;
- `job`: `run(dataset, config, overrides, job)` fits on the fixed protocol beside the baselines, logs
  one MLflow run and, for `job="train"`, registers the model (`training.job` is the shared skeleton);
- `objective`: `sweep_objective(ds, base) -> (metric, train(cfg, trial))` for Optuna, or None;
- `score`: `score(family, dataset, version, chunk)` writes `scores/<family>/<dataset>.parquet`, or None.

Serving never imports this module: it loads each family's registered pyfunc through MLflow.
A new family (the recommender, say) plugs in by adding one entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Family:
    name: str
    summary: str
    config: str
    job: str
    objective: str | None = None
    score: str | None = None
    job_takes_family: bool = False  # churn and propensity share one job, told apart by the family name

    def config_class(self) -> type:
        return _resolve(self.config)

    def runner(self) -> Callable[..., Any]:
        run = _resolve(self.job)
        return partial(run, self.name) if self.job_takes_family else run

    def run(self, dataset: str, config: str | None, overrides: Sequence[str], job: str) -> Any:
        """Fit and compare (`evaluate`), and log and register (`train`)."""
        return self.runner()(dataset, config=config or self.name, overrides=overrides, job=job)

    def sweep_objective(self) -> Callable[..., Any]:
        if self.objective is None:
            raise ValueError(f"tailor sweep supports {', '.join(sweepable())}; got {self.name!r}")
        return _resolve(self.objective)

    def score_members(self, dataset: str, version: int | None = None, chunk: int | None = None) -> Any:
        """Score every member of `dataset` with a registered version (default: the champion) -> Parquet."""
        if self.score is None:
            raise ValueError(f"tailor score supports {', '.join(scorable())}; got {self.name!r}")
        return _resolve(self.score)(self.name, dataset, version=version, chunk=chunk)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "persona",
            "member/item embeddings and recommendations (Lightning), beside the recommendation baselines",
            config="training.persona.config:PersonaConfig",
            job="training.persona.job:run",
            objective="training.persona.job:sweep_objective",
        ),
        Family(
            "churn",
            "P(no purchase within the horizon), calibrated, beside recency, BG/NBD, logistic and LightGBM",
            config="training.outcomes.config:OutcomeConfig",
            job="training.outcomes.job:run",
            objective="training.outcomes.job:sweep_objective",
            score="training.outcomes.pyfunc:score_family",
            job_takes_family=True,
        ),
        Family(
            "propensity",
            "P(purchase within the horizon), calibrated, beside the same baselines",
            config="training.outcomes.config:OutcomeConfig",
            job="training.outcomes.job:run",
            objective="training.outcomes.job:sweep_objective",
            score="training.outcomes.pyfunc:score_family",
            job_takes_family=True,
        ),
        Family(
            "uplift",
            "offer uplift (per-arm heads) beside S/T/X and class-transformation learners",
            config="training.uplift.config:UpliftConfig",
            job="training.uplift.job:run",
            score="training.uplift.score:score_family",
        ),
    )
}


def family(name: str) -> Family:
    """The family called `name`; ValueError listing the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}: one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def sweepable() -> list[str]:
    return [n for n, f in FAMILIES.items() if f.objective]


def scorable() -> list[str]:
    return [n for n, f in FAMILIES.items() if f.score]
