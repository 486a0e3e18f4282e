"""Overview figures: transitions, drift (PSI) with its flag, offer budget used, fairness skew."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.report import overview_figures as of


def test_transitions_count_who_moved() -> None:
    before = pd.DataFrame({"member_id": ["a", "b", "c", "d"], "segment": ["loyal", "loyal", "champions", None]})
    after = pd.DataFrame({"member_id": ["a", "b", "c", "e"], "segment": ["at_risk", "loyal", "at_risk", "new"]})
    t = of.transitions(before, after, "segment")
    assert of.moved(t, "loyal", "at_risk") == 1 and of.moved(t, "champions", "at_risk") == 1
    assert of.moved(t, of.NONE, "new") == 1 and of.moved(t, of.NONE, of.NONE) == 1  # d: no segment, then gone
    assert of.moved(t, "lost", "loyal") == 0 and int(t.to_numpy().sum()) == 5
    assert of.sizes(after, "segment").to_dict() == {"at_risk": 2, "loyal": 1, "new": 1}


def test_psi_flags_a_shift_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"monetary": rng.lognormal(3, 1, 5000), "segment": rng.choice(["a", "b"], 5000)})
    same = pd.DataFrame({"monetary": rng.lognormal(3, 1, 5000), "segment": rng.choice(["a", "b"], 5000)})
    moved = pd.DataFrame(
        {"monetary": rng.lognormal(3.8, 1, 5000), "segment": rng.choice(["a", "b"], 5000, p=[0.9, 0.1])}
    )
    assert of.psi(ref["monetary"], same["monetary"]) < 0.02
    d = of.drift_table(ref, moved).set_index("feature")
    assert d.loc["monetary", "psi"] > of.PSI_THRESHOLD and d.loc["monetary", "moved"]
    assert d.loc["segment", "moved"]
    assert not of.drift_table(ref, same)["moved"].any()


def test_budget_used_counts_redemptions_of_treated_exposures() -> None:
    offers = pd.DataFrame(
        {"offer_id": ["O1", "O2"], "kind": ["coupon", "free_shipping"], "cost": [2.0, 5.0], "budget": [100.0, 0.0]}
    )
    ex = pd.DataFrame(
        {"offer_id": ["O1", "O1", "O1", "O2"], "treated": [True, True, False, True], "outcome": [1.0, 0.0, 1.0, 1.0]}
    )
    b = of.budget_used(offers, ex)
    assert b.loc["O1", ["issued", "redeemed", "used", "share"]].tolist() == [2, 1, 2.0, 0.02]
    assert b.loc["O2", "used"] == 5.0 and pd.isna(b.loc["O2", "share"])  # no budget: share unknown


def test_fairness_flags_only_a_significant_coverage_gap() -> None:
    members = pd.DataFrame({"member_id": [f"m{i}" for i in range(400)], "region": ["north"] * 200 + ["south"] * 200})
    got = pd.DataFrame({"member_id": [f"m{i}" for i in range(100)] + [f"m{i}" for i in range(200, 220)], "value": 3.0})
    f = of.fairness(members, got, "region")
    assert f.loc["north", "coverage"] == 0.5 and f.loc["south", "coverage"] == 0.1
    assert f.loc["north", "value"] == 1.5 and bool(f.loc["south", "skewed"]) and not f.loc["north", "skewed"]
    few = pd.DataFrame({"member_id": ["m0"], "value": 1.0})  # one offer in all: not a skew
    assert not of.fairness(members, few, "region")["skewed"].any()


def test_offer_budget_used_reads_the_live_ledger(tailor_home) -> None:
    """Issue 14, finding 9: "Offer budget used" read the dataset's historical exposures, so 3,250 committed by the
    service to fabricated members did not show. It reads the service's ledger (the state store) now."""
    from datetime import UTC, datetime

    from serving.events import EventStore
    from serving.report.locale import Locale
    from serving.report.overview import budget_section

    assert of.live_budget(pd.DataFrame(columns=["offer_id", "kind", "cost", "budget"]), EventStore().ledger()).empty
    store = EventStore()
    for i in range(500):
        store.record_impressions(f"m_{i}", [("welcome10", 4.0), ("retired_offer", 2.5)], datetime.now(UTC))
    store.erase("m_0")  # its impressions go, the money committed stays
    store.close()
    table, chart = budget_section(Locale())
    rows = {r[0]: dict(zip(table["head"][1:], r[1:], strict=True)) for r in table["rows"]}
    assert rows["welcome10"]["issued"] == "499" and rows["welcome10"]["used"] == Locale().money(2000.0)
    assert rows["retired_offer"]["used"] == Locale().money(1250.0)  # no longer in the catalogue: still shown
    assert rows["member_price_home"]["issued"] == "0" and chart and "welcome10" in chart
