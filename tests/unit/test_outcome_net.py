"""OutcomeNet and its Preprocessor: learns a planted interaction, masks missing labels, round-trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from training.outcomes.fit import fit_outcome_net
from training.outcomes.net import FittedOutcomeNet, OutcomeNet, OutcomeNetConfig, permutation_importance, task_losses
from training.outcomes.tabular import Preprocessor

NUMERIC, CATEGORICAL = ["x1", "x2", "noise", "spend"], ["segment"]
CAT_EFFECT = {"a": -1.0, "b": 0.0, "c": 1.0, "d": 0.0}


def planted(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """y depends on x1*x2 (invisible to a linear model) and on a category; spend is heavy-tailed noise."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "spend": rng.lognormal(3, 1.5, size=n),
            "segment": rng.choice(list(CAT_EFFECT), size=n),
        }
    )
    logit = 2.5 * df["x1"] * df["x2"] + df["segment"].map(CAT_EFFECT)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    df.loc[rng.random(n) < 0.1, "x2"] = np.nan  # missing values get imputed + flagged
    return df, y


@pytest.fixture(scope="module")
def problem():
    df, y = planted(3000, seed=0)
    tr, va, te = slice(0, 1800), slice(1800, 2400), slice(2400, 3000)
    pre = Preprocessor(min_count=5).fit(df.iloc[tr], NUMERIC, CATEGORICAL)
    data = {k: pre.transform(df.iloc[s]) for k, s in {"train": tr, "val": va, "test": te}.items()}
    labels = {"train": y[tr], "val": y[va], "test": y[te]}
    return df, pre, data, labels


@pytest.fixture(scope="module")
def fitted(problem) -> FittedOutcomeNet:
    _, pre, data, y = problem
    cfg = OutcomeNetConfig(
        hidden=[32, 32], dropout=0.0, lr=1e-2, weight_decay=1e-4, batch_size=128, max_epochs=30, patience=5, n_bags=1
    )
    tasks = {"churn": "binary"}
    return fit_outcome_net(
        data["train"], {"churn": y["train"]}, data["val"], {"churn": y["val"]}, tasks, cfg, preprocessor=pre
    )


def test_preprocessor_transforms(problem) -> None:
    df, pre, data, _ = problem
    assert "x2" in pre.indicators and "x1" not in pre.indicators
    assert pre.log == ["spend"]  # heavy-tailed, log1p'd; the normals are not
    assert data["train"].numeric.dtype == np.float32 and data["train"].categorical.dtype == np.int64
    assert data["train"].numeric_names == ["x1", "x2", "x2__missing", "noise", "spend"]
    assert np.allclose(data["train"].numeric[:, [0, 1, 3, 4]].mean(0), 0, atol=1e-5)
    assert data["train"].cardinalities == [5]
    unseen = pre.transform(df.head(3).assign(segment=["zzz", None, "a"]))
    assert unseen.categorical[:, 0].tolist() == [0, 0, 1]
    again = Preprocessor.from_dict(pre.to_dict()).transform(df.head(50))
    assert np.array_equal(again.numeric, pre.transform(df.head(50)).numeric)


def test_preprocessor_quantile_bins(problem) -> None:
    df = problem[0]
    pre = Preprocessor(n_bins=4).fit(df, NUMERIC, CATEGORICAL)
    binned = pre.transform(df)
    assert binned.categorical_names == ["segment", "x1__bin", "x2__bin", "noise__bin", "spend__bin"]
    assert binned.cardinalities[1:] == [5, 5, 5, 5]  # 4 bins + code 0 (missing)
    x1_bins = np.bincount(binned.categorical[:, 1], minlength=5)
    assert x1_bins[0] == 0 and (abs(x1_bins[1:5] - len(df) / 4) < 5).all()  # quartiles
    assert (binned.categorical[df["x2"].isna().to_numpy(), 2] == 0).all()  # missing -> code 0
    assert binned.input_columns == ["x1", "x2", "noise", "spend", "segment"]
    back = Preprocessor.from_dict(pre.to_dict()).transform(df.head(20))
    assert np.array_equal(back.categorical, binned.categorical[:20])


def test_preprocessor_errors_name_the_column(problem) -> None:
    df, pre, _, _ = problem
    with pytest.raises(ValueError, match="'x2'"):
        pre.transform(df.drop(columns="x2"))
    with pytest.raises(ValueError, match="'noise'"):
        Preprocessor().fit(df.assign(noise="high"), NUMERIC, CATEGORICAL)


def test_net_learns_the_interaction_better_than_logistic_regression(problem, fitted) -> None:
    df, _, data, y = problem
    auc_net = roc_auc_score(y["test"], fitted.predict_proba(data["test"], "churn"))
    raw = pd.get_dummies(df, columns=CATEGORICAL).fillna(0.0).to_numpy(float)
    lr = LogisticRegression(max_iter=1000).fit(raw[:1800], y["train"])
    auc_lr = roc_auc_score(y["test"], lr.predict_proba(raw[2400:])[:, 1])
    assert auc_net > 0.75, auc_net
    assert auc_net > auc_lr + 0.08, (auc_net, auc_lr)
    assert {"epoch", "train/loss_churn", "val/loss_churn", "bag"} <= set(fitted.history.columns)
    assert fitted.fit_s > 0 and 1 <= fitted.best_epochs[0] <= 30


def test_permutation_importance_finds_the_signal(problem, fitted) -> None:
    _, _, data, y = problem
    imp = permutation_importance(fitted, data["test"], y["test"], "churn", roc_auc_score, n_repeats=2)
    assert set(imp.index) == {"x1", "x2", "noise", "spend", "segment"}
    assert set(imp.index[:2]) == {"x1", "x2"} and abs(imp["noise"]) < 0.03


def test_save_load_round_trip(problem, fitted, tmp_path: Path) -> None:
    df, _, data, _ = problem
    fitted.save(tmp_path / "net.pt")
    back = FittedOutcomeNet.load(tmp_path / "net.pt")
    assert np.array_equal(back.predict_logits(data["test"])["churn"], fitted.predict_logits(data["test"])["churn"])
    assert np.array_equal(back.predict_proba(df.iloc[2400:], "churn"), fitted.predict_proba(data["test"], "churn"))
    assert back.history.equals(fitted.history)


def test_missing_labels_are_masked() -> None:
    tasks = {"churn": "binary", "spend30": "regression"}
    net = OutcomeNet(3, [4], tasks, hidden=[8])
    out = net(torch.randn(6, 3), torch.tensor([[0], [1], [2], [3], [1], [2]]))
    y = torch.tensor([[1.0, np.nan], [0.0, np.nan], [np.nan, np.nan], [1.0, np.nan], [0.0, np.nan], [1.0, np.nan]])
    losses = task_losses(out, y, tasks)
    assert losses["spend30"][1] == 0 and losses["churn"][1] == 5
    total = sum(s / max(n, 1) for s, n in losses.values())
    assert torch.isfinite(total)
    total.backward()  # the all-NaN task keeps a graph, and no NaN gradient comes out of it
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_multitask_smoke_fit_on_50_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    df, y = planted(50, seed=1)
    pre = Preprocessor().fit(df, NUMERIC, CATEGORICAL)
    data = pre.transform(df)
    spend = np.where(np.arange(50) % 2 == 0, df["x1"].to_numpy(), np.nan)  # half the rows unlabelled
    tasks = {"churn": "binary", "spend30": "regression"}
    cfg = OutcomeNetConfig(
        hidden=[8], dropout=0.1, lr=3e-3, weight_decay=1e-4, batch_size=16, max_epochs=2, patience=10, n_bags=2
    )
    fitted = fit_outcome_net(data, {"churn": y, "spend30": spend}, data, {"churn": y}, tasks, cfg)
    out = fitted.predict_logits(data)
    assert out["churn"].shape == (50,) and np.isfinite(out["spend30"]).all()
    assert len(fitted.nets) == 2 and set(fitted.history["bag"]) == {0, 1}
    assert list(tmp_path.iterdir()) == []  # no checkpoints or logs left behind
