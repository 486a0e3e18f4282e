"""PersonaNet: members and items in one vector space, with a repeat-purchase head.

The member encoder pools the member's purchase history (items with purchase counts and
time since the last purchase) with learned attention, adds member attributes, and maps
the result to one vector u. Items are id + category + price band embeddings v_i (plus a
bias). Discovery is u . v_i; retail is repeat-heavy, so items the member already bought
also get a repeat logit from their count and recency. Retrieval uses u alone (FAISS over
[v_i, b_i] with [u, 1]); ranking adds the repeat logit for the member's own items.
A member with no history gets a vector from attributes alone (cold start), and a known
member's vector is refreshed by re-encoding the new history (fold-in, no retraining).

This module imports only torch: serving loads it without Lightning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

N_HIST_FEATS = 4  # log count, log days since last, log days since first, log gap ratio
N_MEMBER_FEATS = 3  # log occasions, log days since last purchase, log tenure


@dataclass
class PersonaShape:
    """Sizes that define the network (saved with the model)."""

    n_items: int
    n_categories: int
    n_price_bands: int
    n_regions: int
    n_age_bands: int
    dim: int = 64
    hidden: int = 128
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class PersonaNet(nn.Module):
    """Member encoder + item tower + repeat head."""

    def __init__(self, shape: PersonaShape) -> None:
        super().__init__()
        self.shape = shape
        d = shape.dim
        # item tower (targets): id + attributes
        self.item_id = nn.Embedding(shape.n_items, d)
        self.item_cat = nn.Embedding(shape.n_categories, d)
        self.item_price = nn.Embedding(shape.n_price_bands, d)
        self.item_bias = nn.Parameter(torch.zeros(shape.n_items))
        # history side: separate input embeddings act like item-to-item transitions (EASE-like)
        self.hist_id = nn.Embedding(shape.n_items + 1, d, padding_idx=shape.n_items)
        self.hist_feat = nn.Sequential(nn.Linear(N_HIST_FEATS, d), nn.GELU(), nn.Linear(d, d))
        self.attn = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1))
        self.region = nn.Embedding(shape.n_regions, 16)
        self.age = nn.Embedding(shape.n_age_bands, 16)
        self.member = nn.Sequential(
            nn.Linear(2 * d + 32 + N_MEMBER_FEATS, shape.hidden),
            nn.GELU(),
            nn.Dropout(shape.dropout),
            nn.Linear(shape.hidden, d),
        )
        self.repeat = nn.Sequential(nn.Linear(N_HIST_FEATS + 1, 32), nn.GELU(), nn.Linear(32, 1))
        for emb in (self.item_id, self.item_cat, self.item_price, self.hist_id):
            nn.init.normal_(emb.weight, std=0.02)

    def item_vectors(self, item_cat: Tensor, item_price: Tensor) -> Tensor:
        """(n_items, d) item vectors; `item_cat`/`item_price` index each item's attributes."""
        return self.item_id.weight + self.item_cat(item_cat) + self.item_price(item_price)

    def encode(self, hist: Tensor, hist_feats: Tensor, member_feats: Tensor, region: Tensor, age: Tensor) -> Tensor:
        """(batch, d) member vectors. hist: (b, L) item ids padded with n_items; feats (b, L, 4)."""
        mask = hist != self.shape.n_items
        h = self.hist_id(hist) + self.hist_feat(hist_feats)
        score = self.attn(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(score, dim=1).nan_to_num(0.0)  # an empty history pools to zero
        pooled = torch.einsum("bl,bld->bd", weights, h)
        mean = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        x = torch.cat([pooled, mean, self.region(region), self.age(age), member_feats], dim=1)
        return self.member(x)

    def repeat_logits(self, hist: Tensor, hist_feats: Tensor, item_repeat: Tensor) -> Tensor:
        """(b, L) extra logit for each history item (0 on padding)."""
        mask = hist != self.shape.n_items
        rate = item_repeat[hist.clamp(max=self.shape.n_items - 1)].unsqueeze(-1)
        out = self.repeat(torch.cat([hist_feats, rate], dim=-1)).squeeze(-1)
        return out * mask

    def explore(self, batch: dict[str, Tensor], items: dict[str, Tensor]) -> Tensor:
        """(b, n_items) discovery logits u . v_i + b_i: what FAISS retrieval ranks by."""
        u = self.encode(batch["hist"], batch["hist_feats"], batch["member_feats"], batch["region"], batch["age"])
        return u @ self.item_vectors(items["category"], items["price_band"]).T + self.item_bias

    def add_repeat(self, logits: Tensor, batch: dict[str, Tensor], items: dict[str, Tensor]) -> Tensor:
        """Discovery logits plus the repeat logit on each member's own items."""
        rep = self.repeat_logits(batch["hist"], batch["hist_feats"], items["repeat_rate"])
        pad_safe = batch["hist"].clamp(max=self.shape.n_items - 1)  # padding adds 0
        return logits.scatter_add(1, pad_safe, rep)

    def forward(self, batch: dict[str, Tensor], items: dict[str, Tensor]) -> Tensor:
        """(b, n_items) ranking logits over the whole catalogue (repeat-aware)."""
        return self.add_repeat(self.explore(batch, items), batch, items)
