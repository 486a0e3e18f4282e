#!/usr/bin/env bash
# Persona variants on Online Retail, model only (baselines: see baselines.py). Each run is one
# MLflow run in experiment "persona"; summarize.py prints validation and test figures side by side.
# Overrides are relative to configs/persona.yaml, whose defaults are variant K.
# Set TAILOR_PSEUDONYM_KEY (README: persona-benchmark) before `tailor prepare`: the key orders the members,
# and the results move with it as much as with the seed. The pinned-key K rows: `run`, then seeds 1 and 2.
set -euo pipefail
run() { tailor --log-level WARNING evaluate persona --dataset online_retail --set baselines=false "$@"; }
C="train.epochs=10 train.denoise_weight=0"
run $C train.weight_decay=0.0001 model.dropout=0.1                          # A
run $C train.weight_decay=0.0001 model.dropout=0.1 train.explore_weight=0.3 # B
run $C                                                                      # C
run $C train.denoise_weight=1.0                                             # D
run $C train.denoise_weight=1.0 train.epochs=20                             # E
run $C train.denoise_weight=3.0 train.epochs=20                             # F
run $C train.explore_weight=1.0 train.lr=0.001 train.epochs=20              # G
run $C model.dim=128                                                        # H
run $C data.n_cutoffs=20 data.stride_days=15                                # J
run                                                                         # K (default), seed 0
run train.seed=1; run train.seed=2                                          # K, seeds 1 and 2
run $C train.lr=0.001 train.epochs=20                                       # M
run train.hist_dropout=0.2                                                  # N
