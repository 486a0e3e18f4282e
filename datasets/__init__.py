"""Tailor data layer: canonical schema, source adapters, validation, quarantine, features, splits.

Holds everything from a platform's raw files to member features: the canonical tables and their
validation, pseudonymization, the prepared-dataset store, the fixed temporal split every model is
judged on, member features, and `Layout`, which owns every path under TAILOR_HOME. No torch, no
MLflow: it imports none of `training`, `serving` or `tailor`, which all build on it.
"""
