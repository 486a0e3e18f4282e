"""Uplift of the network and of its pyfunc: the treated arms' expected outcome minus the control arm's, by hand.

The network's trunk is replaced by the identity, so its logits are set by hand: the control logit of visit is x0,
the offer adds x1 (arm a) or x1 / 2 (arm b). A "sure thing" (high response in every arm) has the highest
response and zero uplift; a model that forgot to subtract the control arm would rank it first.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from training.uplift.model import Ensemble, UpliftNet, UpliftShape
from training.uplift.pyfunc import predict_frame

# x0 = control logit of visit, x1 = the offer's effect on it
ROWS = {"persuadable": (-2.0, 3.0), "sure_thing": (3.0, 0.0), "sleeping_dog": (1.0, -2.0), "lost_cause": (-3.0, 0.0)}
TEMPERATURE, SHIFT = 2.0, -0.5  # Platt scaling of visit (not of spend)
SPEND_CONTROL, SPEND_A = 10.0, 20.0  # arm b leaves spend as it is


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def hand_net() -> UpliftNet:
    shape = UpliftShape(n_features=2, arms=["control", "a", "b"], outcomes=["visit", "spend"], hidden=2, dropout=0.0)
    net = UpliftNet(shape)
    net.trunk = torch.nn.Identity()
    with torch.no_grad():
        net.base.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        net.base.bias.copy_(torch.tensor([0.0, math.log1p(SPEND_CONTROL)]))
        # effect outputs in (arm, outcome) order: a/visit, a/spend, b/visit, b/spend
        net.effect.weight.copy_(torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, 0.5], [0.0, 0.0]]))
        spend_a = math.log1p(SPEND_A) - math.log1p(SPEND_CONTROL)
        net.effect.bias.copy_(torch.tensor([0.0, spend_a, 0.0, 0.0]))
        net.temperature.copy_(torch.tensor([TEMPERATURE, 5.0]))
        net.shift.copy_(torch.tensor([SHIFT, 3.0]))
    return net.eval()


def expected_visit(x: np.ndarray, effect_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(P(visit | control), P(visit | the arm)) of the hand-set logits after Platt scaling."""
    control, treated = x[:, 0], x[:, 0] + effect_scale * x[:, 1]
    return sigmoid(TEMPERATURE * control + SHIFT), sigmoid(TEMPERATURE * treated + SHIFT)


def test_uplift_is_treated_minus_control_per_arm_and_outcome():
    net = hand_net()
    x = np.array(list(ROWS.values()), np.float32)
    c, a = expected_visit(x, 1.0)
    _, b = expected_visit(x, 0.5)
    assert np.allclose(net.predict(x)[:, :, 0], np.c_[c, a, b], atol=1e-6)
    assert np.allclose(net.uplift(x, ["a"]), a - c, atol=1e-6)
    assert np.allclose(net.uplift(x, ["b"]), b - c, atol=1e-6)
    assert np.allclose(net.uplift(x, ["a", "b"]), (a + b) / 2 - c, atol=1e-6)
    assert np.allclose(net.uplift(x, ["a"], "spend"), SPEND_A - SPEND_CONTROL, atol=1e-4)
    assert np.allclose(net.uplift(x, ["b"], "spend"), 0.0, atol=1e-4)

    u = dict(zip(ROWS, net.uplift(x, ["a"]), strict=True))
    response = dict(zip(ROWS, net.predict(x)[:, 1, 0], strict=True))
    assert max(response, key=response.get) == "sure_thing" and abs(u["sure_thing"]) < 0.01
    assert u["persuadable"] > 0.5 and u["sleeping_dog"] < -0.5 and abs(u["lost_cause"]) < 0.01
    assert sorted(u, key=u.get, reverse=True)[0] == "persuadable" and min(u, key=u.get) == "sleeping_dog"


def test_ensemble_averages_its_networks_uplift():
    one, two = hand_net(), hand_net()
    with torch.no_grad():
        two.base.bias[0] = 1.0  # a higher control response: smaller uplift of the persuadable
    x = np.array(list(ROWS.values()), np.float32)
    ens = Ensemble([one, two])
    assert np.allclose(ens.uplift(x, ["a"]), (one.uplift(x, ["a"]) + two.uplift(x, ["a"])) / 2, atol=1e-7)
    assert not np.allclose(one.uplift(x, ["a"]), two.uplift(x, ["a"]))


def test_pyfunc_gives_each_comparisons_uplift_by_name():
    """predict_frame (the logged pyfunc's and `tailor score uplift`'s path): columns by name, extras ignored."""
    meta = {
        "features": ["x0", "x1"],
        "comparisons": {"a_vs_none": ["a"], "b_vs_none": ["b"], "any_vs_none": ["a", "b"]},
    }
    x = np.array(list(ROWS.values()), np.float32)
    # features in reverse order (its to_numpy() had negative strides, which torch refused) and one extra column
    frame = pd.DataFrame({"other": 7.0, "x1": x[:, 1], "x0": x[:, 0]}, index=list(ROWS))
    out = predict_frame(Ensemble([hand_net()]), meta, frame)
    c, a = expected_visit(x, 1.0)
    _, b = expected_visit(x, 0.5)
    assert list(out.index) == list(ROWS)
    assert np.allclose(out["a_vs_none/visit"], a - c, atol=1e-6)
    assert np.allclose(out["b_vs_none/visit"], b - c, atol=1e-6)
    assert np.allclose(out["any_vs_none/visit"], (a + b) / 2 - c, atol=1e-6)
    assert np.allclose(out["a_vs_none/spend"], SPEND_A - SPEND_CONTROL, atol=1e-4)
    assert np.allclose(out["b_vs_none/spend"], 0.0, atol=1e-4)
    assert np.allclose(out["any_vs_none/spend"], (SPEND_A - SPEND_CONTROL) / 2, atol=1e-4)
    assert out.loc["sure_thing", "a_vs_none/visit"] == pytest.approx(0.0, abs=1e-6)

    missing = predict_frame(Ensemble([hand_net()]), meta, frame.drop(columns="x1"))  # read as 0: no offer effect
    assert np.allclose(missing["a_vs_none/visit"], 0.0, atol=1e-6)
