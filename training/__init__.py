"""Tailor training: models, Lightning wrappers, baselines, metrics, tracking, sweeps, and the CLI."""
