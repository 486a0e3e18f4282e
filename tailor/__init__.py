"""The `tailor` command and the jobs that compose the layers: the top of the import graph.

Layers, top to bottom (an import-linter contract in pyproject.toml, checked by `make lint`):
`tailor` (this package: the command line, the demo, index build, batch scoring, starting the
service) may import `training`, `serving` and `datasets`; `training` (models, Lightning, MLflow
runs, sweeps) and `serving` (the BentoML service; models come through MLflow) are independent
of each other and import only `datasets`; `datasets` (no torch) imports none of them.
"""
