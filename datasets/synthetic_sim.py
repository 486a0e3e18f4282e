"""The simulation behind `tailor generate`: members with latent traits, their events and offer responses.

Everything is vectorized numpy over one chunk of members; a chunk's output depends only on
(seed, chunk index), so output is deterministic and memory is bounded by the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.schema import EVENT_TYPES

if TYPE_CHECKING:
    from datasets.synthetic import SyntheticConfig

US = 1_000_000  # timestamps are int64 microseconds since the epoch
DAY = 86_400 * US
ET = {name: i for i, name in enumerate(EVENT_TYPES)}
DAYPARTS = ("night", "morning", "afternoon", "evening")  # 6-hour blocks from midnight
TS = pa.timestamp("us", tz="UTC")


@dataclass
class Catalog:
    """Items grouped by (category, price level), each group's popularity as a cumulative share."""

    item_ids: pa.Array
    category: np.ndarray  # category index per item
    level: np.ndarray
    price: np.ndarray
    cum: np.ndarray  # group g's items hold values in (g, g + 1]: sampling is one searchsorted
    categories: list[str]


@dataclass
class Chunk:
    members: pa.Table
    events: pa.Table
    exposures: pa.Table
    truth_members: pa.Table
    truth_exposures: pa.Table
    dirt: dict[str, int]


def categorical(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One draw per entry of `rows` from the row's distribution in `probs` (n x K), vectorized."""
    n, k = probs.shape
    cum = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0
    flat = (cum + np.arange(n)[:, None]).ravel()  # row r lies in (r, r + 1]: one sorted array
    pos = np.searchsorted(flat, rows + rng.random(len(rows)), side="right")
    return np.minimum(pos - rows * k, k - 1)


def _session_offsets(counts: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Cumulative sum of `gaps` restarted at each group of `counts` consecutive entries."""
    cs = np.cumsum(gaps)
    first = np.cumsum(counts) - counts
    base = np.where(first > 0, cs[np.maximum(first - 1, 0)], 0.0)
    return cs - np.repeat(base, counts)


def _strings(values: list[str], codes: np.ndarray) -> pa.Array:
    """codes -> strings (a negative code is null), in Arrow without Python loops."""
    return pc.take(pa.array(values, pa.string()), pa.array(codes, pa.int64(), mask=codes < 0))


def raw_ids(first: int, n: int) -> pa.Array:
    """Raw member ids S0000001, ... (prepare pseudonymizes them)."""
    digits = pc.cast(pa.array(np.arange(first + 1, first + n + 1)), pa.string())
    return pc.binary_join_element_wise("S", pc.utf8_lpad(digits, 7, "0"), "")


def events_per_session(cfg: SyntheticConfig) -> float:
    """Expected events in one session (approximate: mean traits), to scale sessions to events_per_member."""
    s = cfg.session
    per_view = 1 + s.click_rate * (1 + s.cart_rate * (1 + 0.9 * s.purchase_rate * (1 + s.return_rate + 0.15)))
    return s.search_rate + s.views_mean * per_view


def traits(cfg: SyntheticConfig, rng: np.random.Generator, n: int, n_cat: int) -> dict[str, np.ndarray]:
    """Latent member traits; times are in days from the span start."""
    m, span = cfg.members, float(cfg.span_days)
    tr = {
        "taste": rng.dirichlet(np.full(n_cat, m.taste_concentration), n),
        "activity": rng.lognormal(-(m.activity_sigma**2) / 2, m.activity_sigma, n),
        "price_sens": rng.beta(2, 2, n),
        "disc_aff": rng.beta(2, 5, n),
        "chan": rng.integers(0, len(m.channels), n),
        "daypart": rng.choice(4, n, p=[m.dayparts[d] for d in DAYPARTS]),
        "region": rng.integers(0, len(m.regions), n),
        "age": rng.integers(0, len(m.age_bands), n),
    }
    old = rng.random(n) >= m.joined_in_span
    tr["joined"] = np.where(old, -rng.random(n) * m.history_days, rng.random(n) * span)
    # Less active members churn faster.
    noise = rng.lognormal(-(m.churn_sigma**2) / 2, m.churn_sigma, n)
    tr["hazard"] = m.churn_per_year / 365 * noise * tr["activity"] ** -0.3
    tr["churn"] = tr["joined"] + rng.exponential(1 / tr["hazard"])
    return tr


def _events(cfg: SyntheticConfig, cat: Catalog, tr: dict, rng: np.random.Generator, start: int) -> dict:
    """Sessions of views -> clicks -> carts -> purchases (+ searches, coupons, returns) as column arrays."""
    m, s, n_lvl, span = cfg.members, cfg.session, len(cfg.catalog.price_levels), float(cfg.span_days)
    taste, price_sens, n = tr["taste"], tr["price_sens"], len(tr["joined"])
    a, b = np.clip(tr["joined"], 0, span), np.clip(tr["churn"], 0, span - 1 / 24)
    active = np.maximum(b - a, 0)
    # Sessions: day uniform over the member's active window, hour mostly in the preferred daypart.
    scale = cfg.events_per_member / (events_per_session(cfg) * cfg.mean_exposure)
    n_sess = rng.poisson(scale * tr["activity"] * active)
    sm = np.repeat(np.arange(n), n_sess)
    n_s = len(sm)
    t = np.floor(a[sm] + rng.random(n_s) * active[sm])
    loyal = rng.random(n_s) < m.daypart_loyalty
    hour = np.where(loyal, 6 * tr["daypart"][sm] + 6 * rng.random(n_s), 24 * rng.random(n_s))
    s_ts = start + (np.clip(t + hour / 24, a[sm], b[sm]) * DAY).astype(np.int64)
    s_chan = np.where(rng.random(n_s) < m.channel_loyalty, tr["chan"][sm], rng.integers(0, len(m.channels), n_s))
    focus = categorical(rng, taste, sm)
    # Views: category from the session focus or the taste, price level from price sensitivity.
    nv = 1 + rng.poisson(s.views_mean - 1, n_s)
    vs = np.repeat(np.arange(n_s), nv)
    vm, n_v = sm[vs], len(vs)
    v_ts = s_ts[vs] + (_session_offsets(nv, 5 + rng.exponential(60, n_v)) * US).astype(np.int64)
    v_cat = np.where(rng.random(n_v) < s.focus, focus[vs], categorical(rng, taste, vm))
    lvl_p = np.array(cfg.catalog.level_shares) * np.exp((0.5 - price_sens)[:, None] * 3 * np.linspace(0, 1, n_lvl))
    v_lvl = categorical(rng, lvl_p / lvl_p.sum(1, keepdims=True), vm)
    item = np.searchsorted(cat.cum, v_cat * n_lvl + v_lvl + rng.random(n_v), side="right")
    click = rng.random(n_v) < s.click_rate
    cart = click & (rng.random(n_v) < s.cart_rate)
    buy = cart & (rng.random(n_v) < s.purchase_rate * (1 - 0.5 * price_sens[vm] * v_lvl / max(n_lvl - 1, 1)))
    qty = 1.0 + rng.poisson(0.3, n_v)
    c_ts = v_ts + ((2 + 20 * rng.random(n_v)) * US).astype(np.int64)
    k_ts = c_ts + ((5 + 55 * rng.random(n_v)) * US).astype(np.int64)
    b_ts = k_ts + ((30 + 270 * rng.random(n_v)) * US).astype(np.int64)
    coupon = buy & (rng.random(n_v) < s.coupon_rate * tr["disc_aff"][vm])
    gross = qty * cat.price[item]
    disc = np.where(coupon, np.round(gross * s.coupon_discount, 2), 0.0)
    paid = np.round(gross - disc, 2)
    r_ts = b_ts + ((1 + 29 * rng.random(n_v)) * DAY).astype(np.int64)
    ret = buy & (rng.random(n_v) < s.return_rate) & (r_ts < start + cfg.span_days * DAY)
    search = rng.random(n_s) < s.search_rate
    nan, n_search = np.full(n_v, np.nan), int(search.sum())
    parts = [  # (event type, mask over views, ts, quantity, amount, discount); searches are added after
        ("view", np.ones(n_v, bool), v_ts, nan, nan, nan),
        ("click", click, c_ts, nan, nan, nan),
        ("cart", cart, k_ts, qty, nan, nan),
        ("purchase", buy, b_ts, qty, paid, disc),
        ("coupon_redeem", coupon, b_ts + US, nan, disc, disc),
        ("return", ret, r_ts, qty, paid, nan),
    ]

    def stack(j: int | np.ndarray, extra: np.ndarray) -> np.ndarray:
        return np.concatenate([(p[j] if isinstance(j, int) else j)[p[1]] for p in parts] + [extra])

    nan_s = np.full(n_search, np.nan)
    ev = {
        "ts": stack(2, s_ts[search] - 10 * US),
        "quantity": stack(3, nan_s),
        "amount": stack(4, nan_s),
        "discount": stack(5, nan_s),
        "type": np.concatenate([np.full(p[1].sum(), ET[p[0]]) for p in parts] + [np.full(n_search, ET["search"])]),
        "session": stack(vs, np.flatnonzero(search)),
        "item": stack(item, np.full(n_search, -1)),
        "query": stack(np.full(n_v, -1), focus[search]),
    }
    ev["member"] = sm[ev["session"]]
    ev["null_member"] = np.zeros(len(ev["ts"]), bool)
    ev["session_no"] = (np.arange(n_s) - np.repeat(np.cumsum(n_sess) - n_sess, n_sess))[ev["session"]]
    ev["channel"] = s_chan[ev["session"]]
    return ev


def simulate(cfg: SyntheticConfig, cat: Catalog, first: int, n: int, seed: int, index: int) -> Chunk:
    """Members first .. first + n - 1: traits, events (with injected dirt), exposures and truth."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1, index]))
    m = cfg.members
    start = int(np.datetime64(cfg.end, "us").astype(np.int64)) + DAY - cfg.span_days * DAY
    tr = traits(cfg, rng, n, len(cat.categories))
    ev = _events(cfg, cat, tr, rng, start)
    # Spend net of returns sets the tier and points the platform would show.
    is_buy, is_ret = ev["type"] == ET["purchase"], ev["type"] == ET["return"]
    spend = np.bincount(ev["member"], np.where(is_buy, ev["amount"], 0) - np.where(is_ret, ev["amount"], 0), n)
    n_clean = np.bincount(ev["member"], minlength=n)
    tier_names = [lv.name for lv in cfg.tiers.levels]
    tier = np.searchsorted([lv.min_spend for lv in cfg.tiers.levels], spend, side="right") - 1
    points = np.round(np.maximum(spend, 0) * cfg.tiers.points_per_unit * (1 - 0.3 * rng.random(n)))
    ev, dirt = _inject_dirt(cfg, ev, rng)
    order = np.lexsort((ev["ts"], ev["member"]))
    ev = {k: v[order] for k, v in ev.items()}
    ids = raw_ids(first, n)
    sess_no = pc.utf8_lpad(pc.cast(pa.array(ev["session_no"]), pa.string()), 4, "0")
    events = {
        "member_id": pc.take(ids, pa.array(ev["member"], mask=ev["null_member"])),
        "ts": pa.array(ev["ts"], TS),
        "event_type": _strings(list(EVENT_TYPES), ev["type"]),
        "item_id": pc.take(cat.item_ids, pa.array(ev["item"], pa.int64(), mask=ev["item"] < 0)),
        "quantity": pa.array(ev["quantity"], from_pandas=True),
        "amount": pa.array(ev["amount"], from_pandas=True),
        "channel": _strings(m.channels, ev["channel"]),
        "session_id": pc.binary_join_element_wise(pc.take(ids, pa.array(ev["member"])), sess_no, "-"),
        "query": _strings(cat.categories, ev["query"]),
        "discount": pa.array(ev["discount"], from_pandas=True),
    }
    joined_ts = pa.array(start + (tr["joined"] * DAY).astype(np.int64), TS)
    signup = np.where(rng.random(n) < 0.6, tr["chan"], rng.integers(0, len(m.channels), n))
    members = {
        "member_id": ids,
        "joined_at": joined_ts,
        "tier": _strings(tier_names, tier),
        "points_balance": pa.array(points),
        "region": _strings(m.regions, tr["region"]),
        "age_band": _strings(m.age_bands, tr["age"]),
        "attr_signup_channel": _strings(m.channels, signup),
    }
    truth = {
        "member_id": ids,
        "joined_at": joined_ts,
        "activity": tr["activity"],
        "churn_hazard_per_day": tr["hazard"],
        "churn_ts": pa.array(start + (np.minimum(tr["churn"], 1e5) * DAY).astype(np.int64), TS),
        "churned": tr["churn"] < cfg.span_days,
        "price_sensitivity": tr["price_sens"],
        "discount_affinity": tr["disc_aff"],
        "preferred_channel": _strings(m.channels, tr["chan"]),
        "preferred_daypart": _strings(list(DAYPARTS), tr["daypart"]),
        "tier": _strings(tier_names, tier),
        "spend": spend,
        "n_events": n_clean,
        **{f"taste_{c}": tr["taste"][:, j] for j, c in enumerate(cat.categories)},
    }
    tr["tier"] = np.array(tier_names, object)[tier]
    exposures, truth_exp = _exposures(cfg, cat, tr, rng, ids, start)
    return Chunk(pa.table(members), pa.table(events), exposures, pa.table(truth), truth_exp, dirt)


def _inject_dirt(cfg: SyntheticConfig, ev: dict, rng: np.random.Generator) -> tuple[dict, dict[str, int]]:
    """Add dirty copies of clean rows, one defect each, so prepare's quarantine counts are known exactly."""
    n = len(ev["ts"])
    purchases = np.flatnonzero(ev["type"] == ET["purchase"])
    counts = {k: int(rng.binomial(n, rate)) for k, rate in cfg.dirt.model_dump().items()}
    for k in ("non_positive_quantity", "non_positive_price"):
        counts[k] = min(counts[k], len(purchases))
    pieces = []
    for kind, k in counts.items():
        src = rng.choice(purchases if kind.startswith("non_positive") else n, k, replace=False)
        piece = {c: v[src].copy() for c, v in ev.items()}
        if kind == "missing_member_id":
            piece["null_member"][:] = True
        elif kind == "ts_out_of_range":  # 1970: before any sane ts_min
            piece["ts"] = (rng.random(k) * 365 * DAY).astype(np.int64)
        elif kind == "non_positive_quantity":
            piece["quantity"] = -rng.integers(0, 2, k).astype(float)
        elif kind == "non_positive_price":
            piece["amount"] = np.zeros(k)
        pieces.append(piece)
    out = {c: np.concatenate([v] + [p[c] for p in pieces]) for c, v in ev.items()}
    return out, counts


def _exposures(
    cfg: SyntheticConfig, cat: Catalog, tr: dict, rng: np.random.Generator, ids: pa.Array, start: int
) -> tuple[pa.Table, pa.Table]:
    """Randomized exposures per offer with heterogeneous planted uplift, and outcomes drawn from it."""
    o = cfg.offers
    raw, truth = [], []
    gain = (2 * tr["disc_aff"] + tr["price_sens"] - 0.5) * 7 / 4  # mean 1 under Beta(2,5), Beta(2,2); < 0 for some
    base = np.log(o.base_rate / (1 - o.base_rate)) + 0.7 * np.log(tr["activity"])
    joined, churn, taste = tr["joined"], tr["churn"], tr["taste"]
    for spec in o.catalog:
        day = float(spec.start_day)
        ok = joined < day
        if spec.eligible_tiers:
            ok &= np.isin(tr["tier"], spec.eligible_tiers)
        idx = np.flatnonzero(ok & (rng.random(len(ok)) < o.exposure_rate))
        k = len(idx)
        treated = rng.random(k) < o.treated_share
        alive = churn[idx] > day
        cols = [cat.categories.index(c) for c in spec.scope]
        fit = 0.5 + 0.5 * taste[idx][:, cols].mean(1) * len(cat.categories) if cols else np.ones(k)
        p0 = np.where(alive, 1.0, 0.1) / (1 + np.exp(-base[idx]))
        p1 = np.clip(p0 + spec.uplift * gain[idx] * fit * alive, 0, 1)
        y = rng.random(k) < np.where(treated, p1, p0)
        value = np.where(y, np.round(rng.lognormal(np.log(35), 0.5, k), 2), 0.0)
        ts = pa.array(start + ((day + rng.random(k)) * DAY).astype(np.int64), TS)
        member = pc.take(ids, pa.array(idx))
        offer = pa.array(np.full(k, spec.offer_id, object), pa.string())
        raw.append(
            pa.table(
                {
                    "member_id": member,
                    "offer_id": offer,
                    "ts": ts,
                    "treated": treated,
                    "outcome": y.astype(float),
                    "outcome_value": value,
                    "randomized": np.ones(k, bool),
                }
            )
        )
        truth.append(
            pa.table(
                {
                    "member_id": member,
                    "offer_id": offer,
                    "treated": treated,
                    "p_control": p0,
                    "p_treated": p1,
                    "true_uplift": p1 - p0,
                    "outcome": y,
                }
            )
        )
    return pa.concat_tables(raw), pa.concat_tables(truth)
