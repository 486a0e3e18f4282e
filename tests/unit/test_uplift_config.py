"""The uplift config's bounds: the smallest values each field takes and the first it refuses (issue 19's mutation
check found none of them tested)."""

from __future__ import annotations

import pydantic
import pytest

from datasets.config import load
from training.uplift.config import UpliftConfig


def _with(path: str, value) -> dict:
    raw = load(UpliftConfig, "uplift").model_dump()
    *parents, leaf = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    node[leaf] = value
    return raw


@pytest.mark.parametrize(
    ("path", "ok", "bad"),
    [
        ("model.hidden", 1, 0),
        ("model.depth", 1, 0),
        ("model.dropout", 0.0, 1.0),
        ("model.bags", 1, 0),
        ("train.epochs", 1, 0),
        ("train.patience", 1, 0),
        ("train.batch_size", 1, 0),
        ("train.lr", 1e-9, 0.0),
        ("train.weight_decay", 0.0, -1e-9),
        ("train.effect_penalty", 0.0, -1e-9),
        ("train.spend_weight", 0.0, -1e-9),
        ("baselines.learning_rate", 1e-9, 0.0),
        ("baselines.num_leaves", 2, 1),
        ("baselines.min_child_samples", 1, 0),
        ("test_size", 0.99, 1.0),
        ("test_size", 0.01, 0.0),
        ("val_size", 0.99, 1.0),
        ("k", 0.99, 1.0),
        ("k", 0.01, 0.0),
    ],
)
def test_bounds(path: str, ok, bad) -> None:
    UpliftConfig.model_validate(_with(path, ok))
    with pytest.raises(pydantic.ValidationError, match=path.rsplit(".", 1)[-1]):
        UpliftConfig.model_validate(_with(path, bad))


def test_baselines_are_the_known_learners() -> None:
    raw = _with("baselines.learners", ["s_learner", "t_learner", "class_transformation", "x_learner"])
    assert UpliftConfig.model_validate(raw).baselines.learners[-1] == "x_learner"
    with pytest.raises(pydantic.ValidationError, match="learners"):
        UpliftConfig.model_validate(_with("baselines.learners", ["r_learner"]))
