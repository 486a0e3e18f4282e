"""Tailor serving: the BentoML service and what it answers with.

Holds the service (`service.py`) and its in-process state (snapshot of models, FAISS indices,
features; the event store, ledger and caps; API keys; the audit log), offer ranking under
business rules, and the member and operator reports. May import `datasets` (and torch, FAISS,
MLflow, BentoML); never `training`, Lightning or Optuna: models are loaded through the MLflow
registry (the family's pyfunc), so a service needs only the registry and TAILOR_HOME.
"""
