"""Where runtime state lives: every path under TAILOR_HOME, spelled once.

`Layout(home)` is passed down explicitly; `Layout.from_env()` reads TAILOR_HOME (default
`./var`) once, at an entry point (the `tailor` command, the service, a test). Nothing writes
`os.environ` to pass a home along.

```
TAILOR_HOME/
  data/<dataset>/              prepared canonical tables (datasets.prepare)
  raw/                         generated raw data (tailor generate)
  secrets/pseudonym.key        pseudonymization key (mode 600)
  mlflow.db  mlartifacts/      MLflow tracking + registry store, artifacts
  registry/alias_history.jsonl champion moves (promotion gate)
  optuna.db  sweeps/<study>/   Optuna storage, best configs
  scores/<family>/<dataset>.parquet   batch scores (churn, propensity, uplift, members)
  serving/indices/             FAISS indices
  serving/{events,keys,audit,ratelimit}.db  live state: events, ledger, caps, tombstones; API keys; audit log;
                               rate-limit buckets
  bentoml/  reports/           BentoML home; HTML reports
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """The paths of one TAILOR_HOME (created on first use)."""

    home: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).resolve())
        self.home.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_env(cls) -> Layout:
        """TAILOR_HOME, or ./var when it is not set."""
        return cls(Path(os.environ.get("TAILOR_HOME", "var")))

    @classmethod
    def of(cls, layout: Layout | Path | str | None) -> Layout:
        """`layout` as a Layout: a home folder is wrapped, None reads TAILOR_HOME."""
        if isinstance(layout, Layout):
            return layout
        return cls.from_env() if layout is None else cls(Path(layout))

    # ---- data layer
    def data(self, dataset: str) -> Path:
        return self.home / "data" / dataset

    def raw(self, name: str) -> Path:
        return self.home / "raw" / name

    @property
    def pseudonym_key(self) -> Path:
        return self.home / "secrets" / "pseudonym.key"

    # ---- training: tracking, registry, sweeps
    @property
    def mlflow_db(self) -> Path:
        return self.home / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI when set (a shared server or database), else the SQLite store in this home."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlflow_db}"

    @property
    def artifacts(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def alias_history(self) -> Path:
        return self.home / "registry" / "alias_history.jsonl"

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{self.home / 'optuna.db'}"

    def sweep(self, study: str) -> Path:
        return self.home / "sweeps" / study

    # ---- batch scores
    def scores(self, family: str, dataset: str) -> Path:
        """Batch scores of one family (churn, propensity, uplift; `members` for `tailor score`)."""
        return self.home / "scores" / family / f"{dataset}.parquet"

    def member_scores(self, dataset: str) -> Path:
        return self.scores("members", dataset)

    # ---- serving
    @property
    def indices(self) -> Path:
        return self.home / "serving" / "indices"

    @property
    def events_db(self) -> Path:
        """Live state: ingested events, issued offers, the budget ledger, tombstones."""
        return self.home / "serving" / "events.db"

    @property
    def keys_db(self) -> Path:
        return self.home / "serving" / "keys.db"

    @property
    def rate_db(self) -> Path:
        """Live state: the token buckets of the rate limits per API key (serving.ratelimit)."""
        return self.home / "serving" / "ratelimit.db"

    @property
    def audit_db(self) -> Path:
        return self.home / "serving" / "audit.db"

    @property
    def bentoml(self) -> Path:
        return self.home / "bentoml"

    @property
    def server_log(self) -> Path:
        return self.home / "serving" / "server.log"

    @property
    def reports(self) -> Path:
        return self.home / "reports"
