"""Churn / propensity labels against hand-made histories, and frames that cannot see past their cutoff."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets.split import check_window
from training.outcomes.frame import behaviour
from training.outcomes.labels import outcome_targets, population, window_labels

C = pd.Timestamp("2024-03-01", tz="UTC")


def log(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "member_id": [r[0] for r in rows],
            "ts": pd.to_datetime([r[1] for r in rows], utc=True, format="ISO8601"),
            "value": [r[2] for r in rows],
            "lines": 1,
            "units": 1.0,
        }
    )


ORDERS = log(
    [
        ("a", "2024-01-10", 10.0),  # a: buys 1 s before the 30-day window ends -> bought, not churned
        ("a", "2024-03-30T23:59:59", 5.0),
        ("b", "2024-02-01", 20.0),  # b: buys exactly at cutoff + 30 d -> outside the window
        ("b", "2024-03-31", 7.0),
        ("c", "2024-02-15", 3.0),  # c: buys 1 s after the 90-day churn window -> churned
        ("c", "2024-05-30T00:00:01", 9.0),
        ("d", "2024-03-01", 4.0),  # d: first order exactly at the cutoff -> not in the population
        ("e", "2024-02-20", 1.0),  # e: buys at the cutoff instant -> in both windows
        ("e", "2024-03-01", 2.0),
        ("z", "2024-12-31", 1.0),  # keeps the data end far away
    ]
)


def test_windows_are_half_open_and_population_is_strictly_before_the_cutoff() -> None:
    assert list(population(ORDERS, C)) == ["a", "b", "c", "e"]
    lab = window_labels(ORDERS, C, {"churn": 90, "buy": 30})
    assert lab.loc["a", "orders_buy"] == 1 and lab.loc["a", "spend_buy"] == 5.0
    assert lab.loc["b", "orders_buy"] == 0 and lab.loc["b", "orders_churn"] == 1
    assert lab.loc["c", "orders_churn"] == 0  # 2024-05-30T00:00:01 is one second after [C, C + 90 d)
    assert lab.loc["e", "orders_buy"] == 1
    y = outcome_targets(lab)
    assert dict(zip(lab.index, y["churn"], strict=True)) == {"a": 0.0, "b": 0.0, "c": 1.0, "e": 0.0}
    assert dict(zip(lab.index, y["buy"], strict=True)) == {"a": 1.0, "b": 0.0, "c": 0.0, "e": 1.0}
    assert y["spend"][0] == pytest.approx(np.log1p(5.0))


def test_a_window_past_the_data_is_nan_or_refused() -> None:
    end = pd.Timestamp("2024-04-15", tz="UTC")
    lab = window_labels(ORDERS, C, {"churn": 90, "buy": 30}, end=end)
    assert lab["orders_churn"].isna().all() and lab["orders_buy"].notna().all()
    assert np.isnan(outcome_targets(lab)["churn"]).all()
    with pytest.raises(ValueError, match="needs 90 days of data after it"):
        check_window(C, 90, end, "test")


def test_behaviour_ignores_orders_at_or_after_the_cutoff() -> None:
    members = population(ORDERS, C)
    before = behaviour(ORDERS, C, members)
    later = pd.concat([ORDERS, log([("a", "2024-03-01", 999.0), ("b", "2024-03-02", 999.0)])])
    pd.testing.assert_frame_equal(before, behaviour(later, C, members))
    assert before.loc["a", "n_orders"] == 1 and before.loc["e", "orders_30d"] == 1


def test_naive_cutoff_is_refused() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        population(ORDERS, pd.Timestamp("2024-03-01 12:00"))
