"""Member outcome models (churn, purchase propensity): BG/NBD baseline, metrics, calibration, plots."""
