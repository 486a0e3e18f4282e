"""Every YAML under configs/ validates against its model; a setting lives in one place; bad values name their field."""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import pytest
import setuptools
import yaml
from pydantic import BaseModel, ValidationError

from datasets.config import load, load_yaml
from datasets.paths import configs_dir, repo_root

CONFIGS = configs_dir()
SWEEP = "training.sweep:SweepConfig"

# configs/<name>.yaml -> "module:Model"; configs/sweeps/*.yaml are all SweepConfig. A YAML missing here fails
# test_every_config_has_a_model.
MODELS = {
    "churn": "training.outcomes.config:OutcomeConfig",
    "features": "datasets.feature_settings:FeatureConfig",
    "offers": "serving.offers:Catalogue",
    "persona": "training.persona.config:PersonaConfig",
    "prepare": "datasets.settings:PrepareConfig",
    "promotion": "training.registry:PromotionConfig",
    "propensity": "training.outcomes.config:OutcomeConfig",
    "serving": "serving.config:ServingConfig",
    "synthetic": "datasets.synthetic:SyntheticConfig",
    "uplift": "training.uplift.config:UpliftConfig",
}
NAMES = sorted(p.relative_to(CONFIGS).with_suffix("").as_posix() for p in CONFIGS.rglob("*.yaml"))
SWEEPS = [n for n in NAMES if n.startswith("sweeps/")]


def model_of(name: str) -> type[BaseModel]:
    module, attr = (SWEEP if name.startswith("sweeps/") else MODELS[name]).split(":")
    return getattr(importlib.import_module(module), attr)


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def section(annotation: Any) -> type[BaseModel] | None:
    """The model of a nested settings section (`X` or `X | None`), else None."""
    if _is_model(annotation):
        return annotation
    if get_origin(annotation) in (Union, UnionType):
        return next((a for a in get_args(annotation) if _is_model(a)), None)
    return None


def record(annotation: Any) -> type[BaseModel] | None:
    """The model of the records in a list or mapping field (`list[X]`, `dict[K, X]`), else None."""
    if get_origin(annotation) in (Union, UnionType):
        return next((r for a in get_args(annotation) if (r := record(a))), None)
    if get_origin(annotation) in (list, dict) and _is_model(get_args(annotation)[-1]):
        return get_args(annotation)[-1]
    return None


def duplicated(model: type[BaseModel], data: dict, prefix: str = "") -> list[str]:
    """Keys the YAML sets for which the model also has a default (two places for one setting)."""
    out = []
    for name, field in model.model_fields.items():
        if name not in data:
            continue
        if not field.is_required():
            out.append(f"{prefix}{name} (model default {field.get_default(call_default_factory=True)!r})")
        sub = section(field.annotation)
        if sub is not None and isinstance(data[name], dict):
            out += duplicated(sub, data[name], f"{prefix}{name}.")
    return out


def records(model: type[BaseModel], in_record: bool = False, seen: set | None = None) -> set[type[BaseModel]]:
    """Every record model (an item of a list or mapping, with its own sections) reachable from `model`."""
    seen = set() if seen is None else seen
    for field in model.model_fields.values():
        for sub, is_record in ((record(field.annotation), True), (section(field.annotation), in_record)):
            if sub is not None and sub not in seen:
                if is_record:
                    seen.add(sub)
                records(sub, is_record, seen)
    return seen


def nothing(value: Any) -> bool:
    """A default that means "none": None, False, empty, or a model whose fields are all that."""
    if isinstance(value, BaseModel):
        return all(nothing(getattr(value, k)) for k in type(value).model_fields)
    return value is None or value is False or (isinstance(value, str | list | dict | tuple) and not value)


def test_every_config_has_a_model() -> None:
    assert not [n for n in NAMES if n not in MODELS and not n.startswith("sweeps/")], "add the new YAML to MODELS"
    assert not [n for n in MODELS if n not in NAMES], "MODELS names a config that is gone"
    from training.families import FAMILIES

    for name, fam in FAMILIES.items():  # the family list's config class is the one validated here
        assert fam.config == MODELS[name], name


@pytest.mark.parametrize("name", NAMES)
def test_every_config_loads(name: str) -> None:
    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    model = model_of(name)
    model.model_validate(data)
    load(model, name)  # through the loader the jobs use


@pytest.mark.parametrize("name", NAMES)
def test_a_setting_lives_in_the_yaml_or_the_model_never_both(name: str) -> None:
    """Where the YAML sets a key the model has no default: the two cannot drift apart (persona.yaml said dropout 0.3
    while PersonaConfig said 0.1). Settings users rarely touch may keep a model default if the YAML leaves them out."""
    assert duplicated(model_of(name), load_yaml(name)) == []


@pytest.mark.parametrize("name", NAMES)
def test_records_default_only_to_none(name: str) -> None:
    """A field an offer, tier level or gate metric may leave out defaults to nothing (no scope, no cap), never to a
    choice such as a cost or a direction, which each record must state."""
    bad = [
        f"{r.__name__}.{f}"
        for r in records(model_of(name))
        for f, field in r.model_fields.items()
        if not field.is_required() and not nothing(field.get_default(call_default_factory=True))
    ]
    assert bad == []


@pytest.mark.parametrize("name", SWEEPS)
def test_sweep_space_names_keys_of_its_base_config(name: str) -> None:
    sweep = load(model_of(name), name)
    model, base = model_of(sweep.base), load_yaml(sweep.base)
    load(model, sweep.base)
    for key, param in sweep.space.items():
        node_model: type[BaseModel] | None = model
        node: Any = base
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{key}: {part!r} is not a key of configs/{sweep.base}"
            if node_model is not None:
                assert part in node_model.model_fields, f"{key}: {node_model.__name__} has no field {part!r}"
                node_model = section(node_model.model_fields[part].annotation)
            node = node[part]
        values = param.choices if param.type == "categorical" else [param.low, param.high]
        for value in values:  # every value a trial may draw gives a valid config
            load(model, sweep.base, [f"{key}={value}"])


def _set(*path: str | int, value: Any) -> Callable[[dict], dict]:
    """An edit of a YAML's data: the value at `path` (keys and list indexes) replaced."""

    def edit(data: dict) -> dict:
        node = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        return data

    return edit


BAD = [
    ("offers", _set("diversity_top", value="three"), "diversity_top"),
    ("offers", _set("offers", 1, "kind", value="teleport"), "offers.1.kind"),
    ("offers", _set("offers", 0, "cap", value={"max": 2}), "offers.0.cap.days"),
    ("persona", _set("train", "epochs", value="twenty"), "train.epochs"),
    ("persona", _set("train", "epoch", value=20), "train.epoch"),  # misspelt: an unknown key is refused
    ("persona", _set("trainer", "strategy", value="fsdp"), "trainer.strategy"),
    ("churn", _set("calibration", value="platt"), "calibration"),
    ("propensity", _set("baselines", value=["recency", "xgboost"]), "baselines.1"),
    ("uplift", _set("baselines", "learners", value=["s_learner", "r_learner"]), "baselines.learners.1"),
    ("features", _set("habits", "weekend_days", value=[5, 7]), "habits.weekend_days.1"),
    ("prepare", _set("tiers", "window_days", value="a year"), "tiers.window_days"),
    ("synthetic", _set("offers", "catalog", 0, "kind", value="teleport"), "offers.catalog.0.kind"),
    (
        "promotion",
        _set("families", "churn", "metrics", 0, "higher_is_better", value="maybe"),
        "families.churn.metrics.0.higher_is_better",
    ),
    ("serving", _set("index", "ef_search", value=0), "index.ef_search"),
    ("sweeps/persona", _set("direction", value="up"), "direction"),
    ("sweeps/churn", _set("space", "net.lr", "type", value="gaussian"), "space.net.lr.type"),
]


@pytest.mark.parametrize(("name", "edit", "field"), BAD, ids=[f"{n}:{f}" for n, _, f in BAD])
def test_a_bad_value_is_refused_naming_its_field(name: str, edit: Callable[[dict], dict], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model_of(name).model_validate(edit(load_yaml(name)))
    named = [".".join(map(str, e["loc"])) for e in caught.value.errors()]
    assert field in named, named


def test_a_bad_override_is_refused_naming_its_field() -> None:
    with pytest.raises(ValidationError, match=r"(?m)^train\.epochs$"):
        load(model_of("persona"), "persona", ["train.epochs=twenty"])
    with pytest.raises(ValidationError, match=r"(?m)^model\.dropuot$"):
        load(model_of("persona"), "persona", ["model.dropuot=0.2"])


def test_the_wheel_ships_every_package_and_every_config() -> None:
    """pyproject lists the packages (configs/ rides along as `datasets.configs`): a new package or a new folder of
    YAML files left out of the list would be missing from an installed wheel."""
    root = repo_root()
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = setuptools.find_packages(str(root), include=["tailor*", "datasets*", "training*", "serving*"])
    folders = {p.parent.relative_to(CONFIGS) for p in CONFIGS.rglob("*.yaml")}
    shipped = {".".join(("datasets", "configs", *f.parts)) for f in folders}
    assert sorted(tool["packages"]) == sorted({*found, *shipped})
    assert tool["package-dir"] == {"datasets.configs": "configs"} and root / "configs" == CONFIGS
    assert all(tool["package-data"][p] == ["*.yaml"] for p in shipped)
    assert Path(importlib.import_module("serving.report.render").TEMPLATES, "member.html.j2").exists()
