"""PersonaNet pieces: shapes, cold start, fold-in, history masking, the loss."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from training.persona.data import PAD_TARGET, LengthBuckets
from training.persona.lightning import mask_history, multilabel_softmax_loss, trim
from training.persona.model import PersonaNet, PersonaShape
from training.persona.pyfunc import encode_history

N = 10


@pytest.fixture
def net() -> PersonaNet:
    torch.manual_seed(0)
    return PersonaNet(PersonaShape(n_items=N, n_categories=3, n_price_bands=4, n_regions=2, n_age_bands=2, dim=8))


def items() -> dict[str, torch.Tensor]:
    return {
        "category": torch.arange(N) % 3,
        "price_band": torch.ones(N, dtype=torch.long),
        "repeat_rate": torch.rand(N),
    }


def batch(hist: list[list[int]]) -> dict[str, torch.Tensor]:
    length = max(len(h) for h in hist) or 1
    padded = torch.full((len(hist), length), N)
    for r, h in enumerate(hist):
        padded[r, : len(h)] = torch.tensor(h, dtype=torch.long)
    b = len(hist)
    return {"hist": padded, "hist_feats": torch.rand(b, length, 4), "member_feats": torch.rand(b, 3),
            "region": torch.zeros(b, dtype=torch.long), "age": torch.zeros(b, dtype=torch.long)}  # fmt: skip


def test_logits_cover_the_catalogue_and_empty_history_is_finite(net):
    out = net(batch([[1, 2], []]), items())
    assert out.shape == (2, N) and torch.isfinite(out).all()


def test_repeat_logit_lands_only_on_history_items(net):
    net.eval()  # no dropout: both calls must see the same encoder
    b, it = batch([[3, 4]]), items()
    diff = (net(b, it) - net.explore(b, it)).detach()[0]
    assert set(torch.nonzero(diff).flatten().tolist()) == {3, 4}  # each history item, and nothing else
    assert diff[9] == 0  # the last item is not touched by history padding


def test_mask_history_masks_only_real_items():
    logits = torch.zeros(2, N)
    out = mask_history(logits, torch.tensor([[1, N], [N, N]]))
    assert torch.isinf(out[0, 1]) and torch.isfinite(out[0, [0, *range(2, N)]]).all() and torch.isfinite(out[1]).all()


def test_loss_matches_hand_computation():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    loss = multilabel_softmax_loss(logits, torch.tensor([[0, 1, PAD_TARGET]]))
    assert math.isclose(loss.item(), -(math.log(0.5) + math.log(0.25)) / 2, rel_tol=1e-6)


def test_trim_cuts_padding_to_longest_history():
    b = batch([[1, 2, 3], [4]])
    b["hist"] = torch.cat([b["hist"], torch.full((2, 5), N)], 1)
    b["hist_feats"] = torch.cat([b["hist_feats"], torch.zeros(2, 5, 4)], 1)
    assert trim(b, N)["hist"].shape == (2, 3)


def test_length_buckets_cover_every_example_once():
    lengths = np.random.default_rng(0).integers(0, 50, size=1000)
    seen = [i for b in LengthBuckets(lengths, 64, seed=1) for i in b]
    assert sorted(seen) == list(range(1000))


def test_fold_in_and_cold_start_through_encode_history(net):
    item_table = pd.DataFrame({"item_id": [f"i{k}" for k in range(N)]})
    index = {f"i{k}": k for k in range(N)}
    vocab = {"region": ["north"], "age_band": ["18-24"], "category": ["a", "b", "c"]}
    at = pd.Timestamp("2024-02-01", tz="UTC")
    rows = pd.DataFrame({"member_id": ["a", "a", "new"], "item_id": ["i1", "i2", "unknown-item"],
                         "ts": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-07"], utc=True),
                         "region": ["north", "north", "north"]})  # fmt: skip
    before = encode_history(net, item_table, index, vocab, rows, at, 20).set_index("member_id")["vector"]
    more = pd.concat([rows, rows.iloc[[0]].assign(item_id="i7", ts=pd.Timestamp("2024-01-20", tz="UTC"))])
    after = encode_history(net, item_table, index, vocab, more, at, 20).set_index("member_id")["vector"]
    assert not np.allclose(before["a"], after["a"])  # fold-in: a new purchase moves the vector
    assert np.isfinite(before["new"]).all()  # cold start: no known item, still a vector


def test_loss_stays_finite_when_padding_points_at_a_masked_item():
    logits = mask_history(torch.zeros(1, N), torch.tensor([[0, 1]]))  # item 0 masked to -inf
    loss = multilabel_softmax_loss(logits, torch.tensor([[5, PAD_TARGET]]))  # padding clamps to item 0
    assert torch.isfinite(loss)


def test_training_step_with_every_loss_is_finite_and_differentiable():
    from training.persona.lightning import PersonaModule

    torch.manual_seed(0)
    shape = PersonaShape(n_items=N, n_categories=3, n_price_bands=4, n_regions=2, n_age_bands=2, dim=8)
    module = PersonaModule(shape, items(), lr=1e-3, weight_decay=0.0, explore_weight=1.0, denoise_weight=1.0)
    module.log = lambda *a, **k: None  # no trainer attached
    module.log_dict = lambda *a, **k: None
    b = batch([[1, 2, 3, 4], [5], []])
    b["targets"] = torch.tensor([[1, 6], [7, PAD_TARGET], [2, PAD_TARGET]])
    loss = module.training_step(b, 0)
    loss.backward()
    assert torch.isfinite(loss) and module.net.hist_id.weight.grad.abs().sum() > 0


def test_validation_never_drops_history_items():
    """Validation ranks with the whole history (hist_dropout is for training only): its top-k equal the net's own
    ranking of the full batch, and the new-item list holds none of the member's items."""
    from training.persona.lightning import PersonaModule

    torch.manual_seed(0)
    shape = PersonaShape(n_items=N, n_categories=3, n_price_bands=4, n_regions=2, n_age_bands=2, dim=8)
    module = PersonaModule(shape, items(), lr=1e-3, weight_decay=0.0, k=3, hist_dropout=0.9).eval()
    hist = [[1, 2, 3, 4, 5, 6], [7, 8]]
    b = batch(hist)
    with torch.no_grad():
        module.validation_step(b, 0)
        full = module.net(b, module.items)  # explore + repeat logits from every history item
        explore = module.net.explore(b, module.items)
    ((top_all, top_new),) = module._val
    assert (top_all == torch.topk(full, 3, dim=1).indices.numpy()).all()
    for r, h in enumerate(hist):
        new = [i for i in torch.argsort(explore[r], descending=True).tolist() if i not in h][:3]
        assert top_new[r].tolist() == new, (r, top_new[r], new)
