"""Tailor training: the models and everything that fits, compares, tracks and registers them.

Holds each model family (persona, churn/propensity in `outcomes`, uplift) as a plain `nn.Module`
with a thin Lightning wrapper, its baselines, the metrics of the fixed protocol, MLflow tracking
and the registry's promotion gate, and Optuna sweeps; `families.py` lists the families once.
May import `datasets` (and torch, Lightning, MLflow, Optuna); never `serving` or `tailor`: what
serving needs of a model travels through the MLflow registry as the family's pyfunc.
"""
