"""`tailor train persona` / `tailor evaluate persona`: the model beside every baseline, on one split.

Protocol (DESIGN.md): global temporal split; validation = the window before the test
cutoff. The model is fitted before the validation cutoff to pick its epoch count, then
refitted on everything before the test cutoff and scored by full ranking over all items
and over new-to-member items. Baselines are tuned and refitted the same way. `train`
logs everything to one MLflow run and registers the model; `evaluate` only compares.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd

from datasets.config import load
from datasets.store import Dataset
from training import tracking
from training.interactions import protocol, purchases
from training.job import Comparison, mlflow_logger, run_job
from training.metrics import evaluate_ranking, rankings, recall_at_k
from training.persona.config import PersonaConfig
from training.persona.fit import Scorer, fit, task_catalogue
from training.persona.pyfunc import PersonaPyfunc, encode_history, save_artifacts

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)
PIP = ["torch==2.13.0", "mlflow==3.17.2", "pandas==3.1.1", "numpy==2.4.6", "pyarrow==25.0.1"]


def run(dataset: str, config: str = "persona", overrides: Sequence[str] = (), job: str = "train") -> pd.DataFrame:
    """Fit, evaluate beside the baselines, log to MLflow; `job="train"` also logs and registers the model."""
    cfg = load(PersonaConfig, config, [f"dataset={dataset}", *overrides])
    ds = Dataset(cfg.dataset)
    w = cfg.window(ds.manifest["source"])
    val, test = protocol(ds, w.test_days, w.val_days)
    log.info("protocol: train %d members x %d items; %d test members (window %s..%s)", test.train.n_members,
             test.train.n_items, len(test.members), test.start.date(), test.end.date())  # fmt: skip

    def compare(active: mlflow.ActiveRun) -> Comparison:
        cat_v = task_catalogue(ds, val.train, cfg)
        _, st_v = fit(val.train, cat_v, cfg, cfg.train.epochs, w.val_days, val=val, logger=mlflow_logger(active))
        epochs = st_v.get("best_epoch", cfg.train.epochs)
        cat = task_catalogue(ds, test.train, cfg)
        module, st = fit(test.train, cat, cfg, epochs, w.test_days)
        scorer = Scorer(module.net, test.train, cat, cfg.data.max_len)
        res = evaluate_ranking(scorer, test, cfg.k)
        tracking.log_metrics({f"test/{k}": v for k, v in res.items()})
        fit_metrics = {"best_epoch": epochs, "val_fit_s": st_v["fit_s"], "test_fit_s": st["fit_s"]}
        fit_metrics |= {"examples": st["examples"], "examples_per_s": st["examples_per_s"]}
        tracking.log_metrics({f"fit/{k}": v for k, v in fit_metrics.items()})
        table = _table(res, cfg.k, st["fit_s"], epochs)
        if cfg.baselines:
            from training.baselines import tune_and_evaluate

            base = tune_and_evaluate(
                ds, w.test_days, w.val_days, cfg.k, models=cfg.baseline_models, grids=cfg.baseline_grids or None
            )
            for _, r in base.iterrows():
                for m in ("ndcg", "recall", "coverage"):
                    tracking.log_metrics({f"baseline/{r['model']}/test/{r['view']}/{m}@{cfg.k}": r[f"{m}@{cfg.k}"]})
            table = pd.concat([table, base.drop(columns=["params", "members"], errors="ignore")], ignore_index=True)
        table = table.sort_values(["view", f"ndcg@{cfg.k}"], ascending=[True, False]).reset_index(drop=True)
        _plots(table, scorer, test, cfg.k)
        headline = (
            f"persona on {ds.name}: test window {test.start.date()}..{test.end.date()}, {len(test.members)} members"
        )
        return Comparison(table, headline, log_model=lambda: _log_model(ds, module.net, cat, test.train.item_ids, cfg))

    return run_job("persona", job, cfg, ds, config, compare, cutoff=str(test.start))


def _table(res: dict, k: int, fit_s: float, epochs: int) -> pd.DataFrame:
    rows = [
        {"model": "persona", "view": v, f"ndcg@{k}": res[f"{v}/ndcg@{k}"], f"recall@{k}": res[f"{v}/recall@{k}"],
         f"coverage@{k}": res[f"{v}/coverage@{k}"], "fit_s": round(fit_s, 1), f"val_ndcg@{k}": np.nan}
        for v in ("all", "new")
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _plots(table: pd.DataFrame, scorer: Scorer, task, k: int) -> None:
    """NDCG@k of the model beside each baseline, and the model's Recall@K curve."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4))
    for ax, view in zip(fig.subplots(1, 2), ("all", "new"), strict=True):
        t = table[table["view"] == view].sort_values(f"ndcg@{k}")
        colors = ["tab:red" if m == "persona" else "tab:gray" for m in t["model"]]
        ax.barh(t["model"], t[f"ndcg@{k}"], color=colors)
        ax.set_title(f"NDCG@{k}, {'all items' if view == 'all' else 'new-to-member items'}")
    fig.tight_layout()
    tracking.log_figure(fig, "plots/ndcg_vs_baselines.png")
    top = rankings(scorer, task, 100, ("all",))["all"]
    curve = [(kk, float(recall_at_k(top, task.truth, kk).mean())) for kk in (5, 10, 20, 50, 100)]
    tracking.log_figure(tracking.recall_at_k_plot({"persona": curve}), "plots/recall_at_k.png")


def _log_model(ds: Dataset, net, cat, item_ids: np.ndarray, cfg: PersonaConfig) -> str:
    """The pyfunc (encoder + item table) and the persona vectors of all members, from all their history."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_artifacts(Path(tmp) / "persona", net, cat, item_ids, cfg.data.max_len)
        items = pd.read_parquet(folder / "items.parquet")
        index = {it: k for k, it in enumerate(items["item_id"])}
        end = pd.Timestamp(ds.manifest["ts_max"]) + pd.Timedelta(microseconds=1)
        t0 = time.perf_counter()
        rows = purchases(ds).merge(ds.table("members", ["member_id", "region", "age_band"]), on="member_id")
        vectors = encode_history(net, items, index, cat.vocab, rows, end, cfg.data.max_len)
        tracking.log_metrics({"score/all_members_s": time.perf_counter() - t0, "score/members": len(vectors)})
        vectors.to_parquet(folder / "vectors.parquet", index=False)
        example = rows.head(5).assign(ts=lambda d: d["ts"].astype(str))
        info = mlflow.pyfunc.log_model(name="model", python_model=PersonaPyfunc(), artifacts={"persona": str(folder)},
                                       input_example=example, pip_requirements=PIP)  # fmt: skip
        return info.model_uri


def sweep_objective(ds: Dataset, base: PersonaConfig) -> tuple[str, Callable]:
    """Objective of persona: NDCG@k over all items on the validation window (the protocol's window before the test
    cutoff; the test window is never scored), from the best validated epoch; pruned on the same metric as the
    PersonaModule logs it each epoch (`val/all/ndcg_at_K`)."""
    from optuna_integration import PyTorchLightningPruningCallback

    from training.interactions import protocol
    from training.metrics import evaluate_ranking
    from training.persona.fit import Scorer, fit, task_catalogue

    if base.trainer.devices > 1 or "ddp" in base.trainer.strategy:
        raise ValueError("a persona sweep trains each trial in one process: drop trainer.devices/strategy (DDP)")
    w = base.window(ds.manifest["source"])
    val, _ = protocol(ds, w.test_days, w.val_days)
    catalogues: dict[int, Any] = {}  # by price_bands, the one catalogue setting a space might vary

    def train(cfg: Any, trial: optuna.Trial) -> tuple[float, dict[str, float]]:
        if cfg.data.price_bands not in catalogues:
            catalogues[cfg.data.price_bands] = task_catalogue(ds, val.train, cfg)
        cat = catalogues[cfg.data.price_bands]
        prune = PyTorchLightningPruningCallback(trial, monitor=f"val/all/ndcg_at_{cfg.k}")
        module, stats = fit(val.train, cat, cfg, cfg.train.epochs, w.val_days, val=val, callbacks=[prune])
        res = evaluate_ranking(Scorer(module.net, val.train, cat, cfg.data.max_len), val, cfg.k)
        extra = {f"val/{k}": v for k, v in res.items() if "members" not in k}
        extra.update({"fit/fit_s": stats["fit_s"], "fit/best_epoch": stats.get("best_epoch", stats["epochs"])})
        return res[f"all/ndcg@{cfg.k}"], extra

    return f"val/all/ndcg@{base.k}", train
