"""BG/NBD: our MLE against lifetimes' BetaGeoFitter, against its own generative process, and the summary."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lifetimes  # the reference implementation (dev extra): a missing package fails these tests, never skips them
import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter
from lifetimes.utils import summary_data_from_transaction_data
from scipy.integrate import quad
from scipy.special import betaln, gammaln

from training.outcomes.bgnbd import BGNBD, summary_from_purchases

TRUE = {"r": 0.5, "alpha": 20.0, "a": 0.8, "b": 2.5}  # days: one purchase per ~40 days, ~24% drop per purchase


def cdnow() -> pd.DataFrame:
    """lifetimes' bundled CDNOW summary (2,357 customers, weeks), read from the wheel: no network.

    `lifetimes.datasets` imports pkg_resources, which the installed setuptools no longer ships,
    so the CSV is read directly from the package folder (what `load_cdnow_summary` does).
    """
    return pd.read_csv(Path(lifetimes.__file__).parent / "datasets" / "cdnow_customers_summary.csv", index_col=0)


def simulate(n: int, params: dict[str, float], seed: int, horizon: float = 0.0) -> pd.DataFrame:
    """Members drawn from the BG/NBD process: (frequency, recency, T) and purchases in (T, T + horizon].

    Each member buys at time 0, then at Poisson(lambda) times; after every repeat purchase they drop
    out with probability p (never right after the first: FHL 2005 assumption iv), so they make at
    most K ~ Geometric(p) >= 1 repeat purchases. The x-th of N(T) uniform arrival times in (0, T]
    is T * Beta(x, N - x + 1).
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params["r"], 1 / params["alpha"], n)
    p = rng.beta(params["a"], params["b"], n)
    k = rng.geometric(np.clip(p, 1e-12, 1))  # repeat purchases before dropping out
    t_age = rng.uniform(100, 400, n).round()
    n_obs = rng.poisson(lam * t_age)
    x = np.minimum(k, n_obs)
    recency = np.where(x > 0, t_age * rng.beta(np.maximum(x, 1), n_obs - x + 1), 0.0)
    alive = k > n_obs
    future = np.where(alive, np.minimum(k - n_obs, rng.poisson(lam * horizon)), 0)
    return pd.DataFrame({"frequency": x, "recency": recency, "T": t_age, "future": future})


def _rfm(df: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    return df["frequency"], df["recency"], df["T"]


def _lifetimes_fit(df: pd.DataFrame) -> BetaGeoFitter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BetaGeoFitter(penalizer_coef=0.0).fit(*_rfm(df))


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return simulate(5000, TRUE, seed=7, horizon=60.0)


@pytest.mark.parametrize("data", ["cdnow", "simulated"])
def test_agrees_with_lifetimes(data: str, simulated: pd.DataFrame) -> None:
    df = cdnow() if data == "cdnow" else simulated
    ours = BGNBD().fit(*_rfm(df))
    ref = _lifetimes_fit(df)
    for k in ("r", "alpha", "a", "b"):
        assert ours.params[k] == pytest.approx(ref.params_[k], rel=1e-3), k
    np.testing.assert_allclose(ours.p_alive(*_rfm(df)), ref.conditional_probability_alive(*_rfm(df)), rtol=1e-3)
    for t in (1.0, 10.0, 52.0):
        np.testing.assert_allclose(
            ours.expected_purchases(t, *_rfm(df)),
            ref.conditional_expected_number_of_purchases_up_to_time(t, *_rfm(df)),
            rtol=1e-3,
        )
    assert not ours.degenerate


def test_cdnow_matches_the_paper() -> None:
    """Fader, Hardie & Lee (2005), CDNOW in weeks: r=0.243, alpha=4.414, a=0.793, b=2.426, LL=-9582.4."""
    m = BGNBD().fit(*_rfm(cdnow()))
    assert [round(m.params[k], 3) for k in ("r", "alpha", "a", "b")] == [0.243, 4.414, 0.793, 2.426]
    assert m.loglik == pytest.approx(-9582.4, abs=0.05)


def test_recovers_simulated_parameters(simulated: pd.DataFrame) -> None:
    """Tolerances ~3 sd of the estimates over 12 seeds (sd 2%, 4%, 5%, 8% for r, alpha, a, b)."""
    m = BGNBD().fit(*_rfm(simulated))
    for k, tol in {"r": 0.07, "alpha": 0.15, "a": 0.15, "b": 0.25}.items():
        assert m.params[k] == pytest.approx(TRUE[k], rel=tol), (k, m.params)


def test_predictions_calibrated_on_simulated_holdout(simulated: pd.DataFrame) -> None:
    """With the true parameters, predicted P(no purchase) and E[purchases] match the simulated next 60 days.

    Over 20 seeds the gaps were 0.002 +- 0.005 (P(no purchase), absolute) and -0.7% +- 2.3% (E[purchases]).
    """
    m = BGNBD(params=dict(TRUE))
    p0 = m.p_no_purchase(60.0, *_rfm(simulated))
    assert p0.mean() == pytest.approx((simulated["future"] == 0).mean(), abs=0.015)
    assert m.expected_purchases(60.0, *_rfm(simulated)).mean() == pytest.approx(simulated["future"].mean(), rel=0.07)


@pytest.mark.parametrize(("x", "tx", "t_age"), [(0, 0.0, 50.0), (1, 3.0, 80.0), (4, 70.0, 90.0), (12, 20.0, 300.0)])
def test_p_no_purchase_by_numerical_integration(x: int, tx: float, t_age: float) -> None:
    """Integrate the posterior over lambda numerically (p analytically) and compare with the closed form."""
    r, alpha, a, b, t = *TRUE.values(), 45.0
    w_alive = np.exp(betaln(a, b + x) - betaln(a, b))  # E[(1-p)^x]
    w_dead = np.exp(betaln(a + 1, b + x - 1) - betaln(a, b)) if x > 0 else 0.0  # E[p (1-p)^(x-1)]

    def gamma_pdf(lam: float) -> float:
        return np.exp(r * np.log(alpha) + (r - 1) * np.log(lam) - alpha * lam - gammaln(r))

    def integral(f) -> float:
        return quad(lambda lam: f(lam) * lam**x * gamma_pdf(lam), 0, np.inf, limit=200, epsabs=0, epsrel=1e-10)[0]

    evidence = integral(lambda lam: w_alive * np.exp(-lam * t_age) + w_dead * np.exp(-lam * tx))
    zero_next = integral(lambda lam: w_alive * np.exp(-lam * (t_age + t)) + w_dead * np.exp(-lam * tx))
    alive = integral(lambda lam: w_alive * np.exp(-lam * t_age))
    m = BGNBD(params=dict(TRUE))
    assert m.p_no_purchase(t, [x], [tx], [t_age])[0] == pytest.approx(zero_next / evidence, rel=1e-6)
    assert m.p_alive([x], [tx], [t_age])[0] == pytest.approx(alive / evidence, rel=1e-6)


def test_no_dropout_data_is_flagged_degenerate(caplog: pytest.LogCaptureFixture) -> None:
    df = simulate(3000, {"r": 0.5, "alpha": 20.0, "a": 1e-12, "b": 1e6}, seed=3)
    with caplog.at_level(logging.WARNING, logger="training.outcomes.bgnbd"):
        m = BGNBD().fit(*_rfm(df))
    assert m.degenerate
    assert "degenerate" in caplog.text
    assert m.p_alive(*_rfm(df)).min() > 0.99


def test_round_trip(simulated: pd.DataFrame) -> None:
    m = BGNBD().fit(*_rfm(simulated))
    back = BGNBD.from_dict(m.to_dict())
    np.testing.assert_array_equal(back.p_no_purchase(30, *_rfm(simulated)), m.p_no_purchase(30, *_rfm(simulated)))
    assert back.to_dict() == m.to_dict()


def test_rejects_inconsistent_history() -> None:
    with pytest.raises(ValueError, match="recency"):
        BGNBD(params=dict(TRUE)).p_alive([1], [5.0], [3.0])


def test_summary_matches_lifetimes() -> None:
    cutoff = pd.Timestamp("2011-01-10", tz="UTC")
    ts = [
        ("a", "2011-01-01 10:00Z"),
        ("a", "2011-01-01 18:00Z"),  # same day as the first: one purchase period
        ("a", "2011-01-05 23:59Z"),
        ("b", "2011-01-02 00:00Z"),
        ("b", "2011-01-05 23:30-05:00"),  # 2011-01-06 04:30 UTC: a UTC day, not a local one
        ("b", "2011-01-09 23:59:59Z"),
        ("b", "2011-01-10 00:00Z"),  # exactly at the cutoff: excluded
        ("c", "2011-01-10 00:00Z"),  # only at the cutoff: not a member yet
        ("d", "2011-01-09 08:00Z"),
    ]
    log = pd.DataFrame(
        {"member_id": [m for m, _ in ts], "ts": [pd.Timestamp(s).tz_convert("UTC") for _, s in ts]}
    ).astype({"ts": "datetime64[us, UTC]"})
    ours = summary_from_purchases(log, cutoff)
    expected = pd.DataFrame(
        {"frequency": [1, 2, 0], "recency": [4.0, 7.0, 0.0], "T": [9.0, 8.0, 1.0]},
        index=pd.Index(["a", "b", "d"], name="member_id"),
    )
    pd.testing.assert_frame_equal(ours, expected)

    before = log[log["ts"] < cutoff].assign(ts=lambda f: f["ts"].dt.tz_localize(None))  # naive UTC for lifetimes
    ref = summary_data_from_transaction_data(
        before, "member_id", "ts", freq="D", observation_period_end=cutoff.tz_localize(None)
    ).sort_index()
    np.testing.assert_array_equal(ours.index, ref.index)
    np.testing.assert_allclose(ours.to_numpy(float), ref[["frequency", "recency", "T"]].to_numpy(float))

    weeks = summary_from_purchases(log, cutoff, unit_days=7.0)
    np.testing.assert_allclose(weeks[["recency", "T"]].to_numpy(), ours[["recency", "T"]].to_numpy() / 7)
    assert weeks["frequency"].tolist() == ours["frequency"].tolist()


def test_summary_refuses_naive_timestamps() -> None:
    log = pd.DataFrame({"member_id": [1], "ts": [pd.Timestamp("2011-01-01")]})
    with pytest.raises(ValueError, match="tz-aware"):
        summary_from_purchases(log, "2011-02-01")
