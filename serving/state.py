"""ServingState: every answer the service gives, in process (no HTTP).

Methods take the platform's RAW member ids and pseudonymize them with the dataset's key and
namespace; answers carry only pseudonyms. Heavy data lives in an immutable Snapshot swapped
whole on `reload`; what ingestion changes (fresh persona vectors, recency) sits in small
overlays guarded by a lock. Unknown or erased members get a cold-start answer, never an error.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import threading
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from datasets import quarantine as q
from datasets.layout import Layout
from datasets.pseudonym import pseudonymize_fast, pseudonymize_one
from serving import index as ix
from serving.bundle import score_of
from serving.config import ServingConfig
from serving.events import EventStore, validate
from serving.offers import MemberView
from serving.offers import rank_offers as rank
from serving.snapshot import TAGS, Snapshot, item_reasons, load_snapshot
from serving.snapshot import plain as _plain


class ServingState:
    """Persona, recommendations, lookalikes, offers, ingestion and erasure over one snapshot."""

    def __init__(self, snap: Snapshot, store: EventStore, cfg: ServingConfig, dataset: str, layout: Layout) -> None:
        self._snap, self._store, self._cfg, self._dataset, self._layout = snap, store, cfg, dataset, layout
        self._lock = threading.RLock()
        self._fresh: dict[str, np.ndarray] = {}  # member -> vector folded in from ingested events
        self._recent: dict[str, dict] = {}  # member -> feature overrides after ingested purchases
        self._last_buy: dict[str, pd.Timestamp] = {}  # member -> time of the latest purchase, ingested ones included
        self._cold: dict[tuple, np.ndarray] = {}  # (persona version, region, age band) -> cold-start vector
        self._erased = store.tombstoned()
        self._touched = store.members()
        self._unread = set(self._touched)  # members whose ingested purchases changed since their vector was folded

    @classmethod
    def load(
        cls, home: Layout | Path | None = None, dataset: str | None = None, cfg: ServingConfig | None = None
    ) -> ServingState:
        """Load the champions, indices and features of the home's `dataset` (default: the config's)."""
        layout = Layout.of(home)
        cfg = cfg or ServingConfig.load()
        dataset = dataset or cfg.dataset
        store = EventStore(layout.home)
        state = cls(load_snapshot(dataset, cfg, store.tombstoned(), layout), store, cfg, dataset, layout)
        _freeze_heap()
        return state

    @property
    def dataset(self) -> str:
        """Name of the served dataset."""
        return self._snap.ds.name

    # ---- ids and vectors
    def pseudonym(self, raw_member_id: str) -> str:
        if not isinstance(raw_member_id, str | int) or isinstance(raw_member_id, bool) or not str(raw_member_id):
            raise ValueError("member_id: required non-empty string")
        return pseudonymize_one(str(raw_member_id).strip(), self._snap.key, self._snap.namespace)

    def _history(self, s: Snapshot, p: str) -> pd.DataFrame:
        """The member's purchases: prepared data plus ingested events."""
        rows = s.history.of(p)
        if p in self._touched:
            ev = self._store.history(p)
            ev = ev.loc[(ev["event_type"] == "purchase") & ~(ev["quantity"].fillna(1) <= 0), ["item_id", "ts"]]
            rows = pd.concat([rows, ev], ignore_index=True)
        return rows

    def _items(self, s: Snapshot, p: str) -> np.ndarray:
        """The member's purchased item ids, oldest first (none once erased)."""
        if p in self._erased:
            return np.empty(0, dtype=object)
        if p in self._touched:
            return self._history(s, p)["item_id"].astype(str).to_numpy(dtype=object)
        return s.history.items_of(p)

    def _encode(self, s: Snapshot, p: str, hist: pd.DataFrame) -> np.ndarray:
        a = s.attrs.get(p) or {}
        region, age = _plain(a.get("region")), _plain(a.get("age_band"))
        if hist.empty:  # cold start: attributes only, the same vector for everyone who shares them (cached)
            key = (s.persona.version, region, age)
            if key not in self._cold:
                rows = pd.DataFrame({"member_id": [p], "item_id": [None], "ts": [s.end], "region": [region],
                                     "age_band": [age]})  # fmt: skip
                out = s.persona.encode(rows, s.end)
                self._cold[key] = np.asarray(out["vector"].iloc[0], dtype=np.float32)
            return self._cold[key]
        rows = hist.assign(member_id=p, region=region, age_band=age)
        at = max(s.end, pd.Timestamp(rows["ts"].max()).tz_convert("UTC")) + pd.Timedelta(microseconds=1)
        out = s.persona.encode(rows, at)
        return np.asarray(out["vector"].iloc[0], dtype=np.float32)

    def _vector(self, s: Snapshot, p: str) -> tuple[np.ndarray, bool]:
        """(vector, cold_start) of a pseudonym."""
        if p in self._erased:
            return self._encode(s, "\x00erased", pd.DataFrame({"item_id": [], "ts": []})), True
        if p in self._fresh:
            return self._fresh[p], False
        if p in self._unread:  # a purchase was ingested since the last fold: read the history once, then cache
            with self._lock:
                self._unread.discard(p)
            hist = self._history(s, p)
            if len(hist):
                vec = self._encode(s, p, hist)
                with self._lock:
                    if p not in self._unread and p not in self._erased:  # no purchase or erasure arrived meanwhile
                        self._fresh[p] = vec
                return vec, False
        row = s.vec_rows.get(p)
        if row is not None:
            return s.vectors.matrix[row], False
        return self._encode(s, p, pd.DataFrame({"item_id": [], "ts": []})), True

    def _versions(self, s: Snapshot) -> dict:
        return dict(s.versions)

    def is_erased(self, member_id: str) -> bool:
        """True when the member was erased: nothing about them may be shown again."""
        return self.pseudonym(member_id) in self._erased

    # ---- answers
    def persona(self, member_id: str) -> dict:
        s, p = self._snap, self.pseudonym(member_id)
        vec, cold = self._vector(s, p)
        f = {} if p in self._erased else (s.feats.get(p) or {})
        f.update(self._recent.get(p, {}))
        known = not cold and p not in self._erased
        return {
            "member": p, "cold_start": cold, "vector": [float(x) for x in vec],
            "segment": _plain(f.get("segment")), "lifecycle": _plain(f.get("lifecycle")) or "prospect",
            "recency_days": _plain(f.get("recency_days")),
            "tags": {t: _plain(f.get(t)) for t in TAGS}, "tier": _plain(f.get("tier")),
            "points": _plain(f.get("points_balance")),
            "scores": {"churn": score_of(s.scores["churn"], p, "p_churn") if known else None,
                       "purchase_30d": score_of(s.scores["propensity"], p, "p_buy") if known else None},
            "model_versions": self._versions(s),
        }  # fmt: skip

    def _k(self, k: int, field: str = "k") -> int:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self._cfg.limits.max_k:
            raise ValueError(f"{field}: must be an integer in 1..{self._cfg.limits.max_k}")
        return k

    def recommend(self, member_id: str, k: int = 10, exclude_bought: bool = True) -> dict:
        s, p, k = self._snap, self.pseudonym(member_id), self._k(k)
        vec, cold = self._vector(s, p)
        hist = self._items(s, p)
        bought = set(hist) if exclude_bought else set()
        if cold:
            top = [(i, v) for i, v in s.popular_top if i not in bought][:k]
            items = [{"item_id": i, "score": round(v, 6), "reasons": ["popular with members right now"]}
                     for i, v in top]  # fmt: skip
            return {"member": p, "cold_start": True, "items": items, "model_versions": self._versions(s)}
        scores, rows = s.items.search(ix.member_query(vec), k + len(bought))
        favs = set(self._tags(s, p))
        own = _recent_distinct(hist, s.item_index, 50)
        own_mat = ix.normalize(s.item_mat[[s.item_index[i] for i in own]]) if own else None
        items = []
        for sc, r in zip(scores[0], rows[0], strict=True):
            item = str(s.items.ids[r]) if r >= 0 else None
            if item is None or item in bought:
                continue
            items.append({"item_id": item, "score": float(sc), "reasons": item_reasons(s, item, own, favs, own_mat)})
            if len(items) == k:
                break
        return {"member": p, "cold_start": False, "items": items, "model_versions": self._versions(s)}

    def _tags(self, s: Snapshot, p: str) -> list[str]:
        cats = s.feats.value(p, "top_categories")
        return [] if cats is None or (isinstance(cats, float) and np.isnan(cats)) else [str(c) for c in cats]

    def lookalike(self, seeds: list[str] | None = None, segment: str | None = None, k: int = 50) -> dict:
        s, k = self._snap, self._k(k)
        if seeds is not None and (not isinstance(seeds, list) or not seeds):
            raise ValueError("seeds: must be a non-empty list of member ids")
        if not seeds and not segment:
            raise ValueError("seeds: give seeds or a segment")
        if seeds:
            ps = [self.pseudonym(x) for x in seeds]
            group = [p for p in ps if p not in self._erased and (p in s.member_pos or p in self._fresh)]
            basis = f"seeds ({len(group)} of {len(ps)} known)"
        else:
            if not isinstance(segment, str):
                raise ValueError("segment: must be a string")
            group = [p for p in s.feats.ids[s.feats.cols["segment"] == segment] if p in s.member_pos]
            basis = f"segment: {segment} ({len(group)} members)"
        if not group:
            return {"members": [], "basis": basis}
        q = ix.normalize(np.mean(ix.normalize(np.stack([self._vector(s, p)[0] for p in group])), 0, keepdims=True))
        skip = set(group) | self._erased
        fresh = self._fresh_vectors(s)  # members whose events moved them since the index was built
        scores, rows = s.members.search(q, k + len(skip) + len(fresh))
        found = {str(s.members.ids[r]): float(sc) for sc, r in zip(scores[0], rows[0], strict=True) if r >= 0}
        if fresh:
            found.update(zip(fresh, (ix.normalize(np.stack(list(fresh.values()))) @ q[0]).tolist(), strict=True))
        out = sorted(((m, sc) for m, sc in found.items() if m not in skip), key=lambda x: (-x[1], x[0]))[:k]
        return {"members": [{"member": m, "score": sc} for m, sc in out], "basis": basis}

    def _fresh_vectors(self, s: Snapshot) -> dict[str, np.ndarray]:
        """Vectors refolded from ingested events (the index still holds their old ones); at most `fresh_max` members,
        refolding up to that many members whose purchases changed since their last fold. Members whose events hold
        no purchase (searches, views of made-up members) are never re-read: their vector did not move."""
        limit = self._cfg.lookalike.fresh_max
        with self._lock:
            pending = [p for p in self._unread if p not in self._fresh and p not in self._erased]
        for p in pending[: max(0, limit - len(self._fresh))]:
            self._vector(s, p)
        with self._lock:
            return dict(list(self._fresh.items())[-limit:])

    def rank_offers(
        self, member_id: str, k: int = 5, channel: str | None = None, at: datetime | None = None, record: bool = True
    ) -> dict:
        """Ranked offers; `record=False` ranks without issuing (no impression, no budget spent: reports, what-ifs).

        A recorded rank issues at the server's clock: a caller's `at` is accepted only within
        `offer_loop.time_tolerance_s` of it (else caps could be stepped past, or a member locked out by issues in the
        future); a dry run may rank at any time. Unknown (cold-start) members are issued only offers that commit no
        budget unless `offer_loop.unknown_members_commit`. The answer's `issued` lists what was issued and its cost.
        """
        s, p, k = self._snap, self.pseudonym(member_id), self._k(k)
        if channel is not None and not isinstance(channel, str):
            raise ValueError("channel: must be a string")
        if at is not None and not isinstance(at, datetime):
            raise ValueError("context.time: must be a datetime")
        now, loop = datetime.now(UTC), self._cfg.offer_loop
        if record and at is not None:
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            if abs((at - now).total_seconds()) > loop.time_tolerance_s:
                raise ValueError(
                    f"context.time: more than {loop.time_tolerance_s:g} s from the server's clock; a recorded rank "
                    "runs at the present time (send record=false for a what-if)"
                )
            at = now
        at = at or now
        vec, cold = self._vector(s, p)
        f = {} if p in self._erased else (s.feats.get(p) or {})
        hist = self._items(s, p)
        bought = {i: str(s.category_of.get(i)) for i in list(dict.fromkeys(hist[::-1]))[:20][::-1]}
        view = MemberView(p, _plain(f.get("tier")), _plain(f.get("segment")), self._tags(s, p), bought)
        scores, rows = s.offers.search(ix.member_query(vec), len(s.offers.ids))
        affinity = {str(s.offers.ids[r]): float(sc) for sc, r in zip(scores[0], rows[0], strict=True) if r >= 0}
        up = s.scores["uplift"]
        uplift = up.get(p) if up is not None and not cold else None
        with self._lock:  # issuing commits budget and counts towards caps: one at a time
            shown = self._store.issued_since(p, pd.Timestamp(at) - pd.Timedelta(days=366))
            p_buy = None if cold else score_of(s.scores["propensity"], p, "p_buy")
            offers = rank(
                s.catalogue,
                view,
                affinity=affinity,
                uplift=uplift,
                spent=self._store.spent(),
                shown=shown,
                p_buy=p_buy,
                at=at,
                k=len(s.catalogue.offers),
                channel=channel,
                drop_negative=not self._exploring(p),
            )
            if cold and not loop.unknown_members_commit:  # fabricated ids must not drain budgets
                offers = [o for o in offers if o["cost"] == 0]
            offers = offers[:k]
            issued = [(o["offer_id"], o.pop("cost")) for o in offers]
            if record:
                self._store.record_impressions(p, issued, at)
        return {
            "member": p,
            "cold_start": cold,
            "offers": offers,
            "policy": s.catalogue.policy,
            "policy_version": s.catalogue.version,
            "issued": [{"offer_id": o, "cost": c} for o, c in issued] if record else [],
        }

    def _exploring(self, p: str) -> bool:
        """Hook of the offer loop's exploration arm: True when the member's arm explores, which lets offers of
        negative expected value be issued. No experiment arms exist yet: nobody explores."""
        return False

    # ---- writes
    def add_events(self, events: list[dict]) -> dict:
        if not isinstance(events, list):
            raise ValueError("events: must be a list of objects")
        if len(events) > self._cfg.events.max_batch:
            raise ValueError(f"events: at most {self._cfg.events.max_batch} per call")
        e, s = self._cfg.events, self._snap
        now = pd.Timestamp.now(tz="UTC")
        clean, rejected, where = [], [], []
        for i, row in enumerate(events):
            ok, err = validate(row, now, e.future_tolerance_s, e.max_abs_value)
            if ok is not None:
                ok["member_id"] = self.pseudonym(ok["member_id"])
                if ok["session_id"]:  # a session can carry a guest's identity: keyed like prepare does
                    ok["session_id"] = str(pseudonymize_fast(pd.Series([ok["session_id"]]), s.key,
                                                             s.namespace + ":session").iloc[0])  # fmt: skip
                if ok["member_id"] in self._erased:
                    ok, err = None, ("member_id", "member was erased")
            if ok is None:
                rejected.append({"index": i, "field": err[0], "reason": err[1]})
                continue
            clean.append(ok)
            where.append(i)
        broken = _event_rules(s, clean, now, e.late_window_days, e.future_tolerance_s)
        for i, err in zip(where, broken, strict=True):
            if err is not None:
                rejected.append({"index": i, "field": err[0], "reason": err[1]})
        clean = [row for row, err in zip(clean, broken, strict=True) if err is None]
        where = [i for i, err in zip(where, broken, strict=True) if err is None]
        with self._lock:
            fresh = self._store.insert(clean)
            for i, row, new in zip(where, clean, fresh, strict=True):
                if not new:
                    rejected.append({"index": i, "field": "event", "reason": "duplicate of a stored event"})
                    continue
                p = row["member_id"]
                self._touched.add(p)
                if row["event_type"] == "purchase":
                    self._fresh.pop(p, None)  # refolded on the next read
                    self._unread.add(p)
                    old = s.feats.get(p) or {"frequency": 0, "monetary": 0.0}
                    r = self._recent.setdefault(p, {"frequency": int(old.get("frequency") or 0),
                                                    "monetary": float(old.get("monetary") or 0.0)})  # fmt: skip
                    stage = "active" if old.get("lifecycle") not in (None, "prospect") else "new"
                    spend = round(r["monetary"] + (row["amount"] or 0.0), 2)
                    last = self._last_buy.get(p)
                    if last is None and _plain(old.get("recency_days")) is not None:
                        last = s.end - pd.Timedelta(days=float(old["recency_days"]))
                    ts = pd.Timestamp(row["ts"])  # a late event counts at its own time, not at its arrival
                    self._last_buy[p] = last = ts if last is None else max(last, ts)
                    recency = max(0, (now - last) // pd.Timedelta(days=1))
                    r.update(recency_days=recency, frequency=r["frequency"] + 1, monetary=spend, lifecycle=stage)
        rejected.sort(key=lambda r: r["index"])
        return {"accepted": len(events) - len(rejected), "rejected": rejected}

    def erase(self, member_id: str) -> dict:
        p = self.pseudonym(member_id)
        with self._lock:
            s = self._snap
            removed = self._store.erase(p)
            in_vectors = p in s.member_pos or p in self._fresh
            removed |= {"persona_rows": int(in_vectors), "index_rows": int(p in s.member_pos),
                        "feature_rows": int(p in s.feats),
                        "history_rows": s.history.count(p)}  # fmt: skip
            self._erased.add(p)
            self._touched.discard(p)
            self._unread.discard(p)
            self._fresh.pop(p, None)
            self._recent.pop(p, None)
            self._last_buy.pop(p, None)
        return {"member": p, "removed": removed}

    def reload(self) -> dict:
        """Build the new snapshot off the lock (answers go on from the old one), swap it in, freeze it."""
        new = load_snapshot(self._dataset, self._cfg, self._store.tombstoned(), self._layout)
        with self._lock:
            old, self._snap = self._snap, new
            self._unread |= set(self._fresh)
            self._fresh.clear()  # vectors of the old persona model: refolded lazily with the new one
        gone = weakref.ref(old)
        del new, old
        _refreeze(gone)
        return self.versions()

    def versions(self) -> dict:
        s = self._snap
        return {**self._versions(s), "policy_version": s.catalogue.version, "dataset": s.ds.name}


def _event_rules(
    s: Snapshot, rows: list[dict], now: pd.Timestamp, late_days: float, tolerance_s: float
) -> list[tuple[str, str] | None]:
    """(field, reason) or None per clean event: `tailor prepare`'s value rules (datasets.quarantine), with the time
    window [now - late_days, now + tolerance_s], and an item the served dataset knows."""
    if not rows:
        return []
    frame = pd.DataFrame(rows, columns=["ts", "event_type", "item_id", "quantity", "amount"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    q.flag_event_values(frame, now - pd.Timedelta(days=late_days), now + pd.Timedelta(seconds=tolerance_s))
    item = frame["item_id"].astype(str)
    q.flag(frame, (item != "") & ~item.map(s.category_of.__contains__).astype(bool), "unknown_item")
    why = {
        "ts_out_of_range": f"older than {late_days:g} days (events.late_window_days) or in the future",
        "non_positive_quantity": "quantity must be positive",
        "non_positive_price": "a purchase's amount must be positive",
        "unknown_item": "not an item of the served catalogue",
    }
    fields = {**q.EVENT_RULE_FIELDS, "unknown_item": "item_id"}
    reasons = frame[q.REASON] if q.REASON in frame.columns else pd.Series(pd.NA, index=frame.index)
    return [None if pd.isna(r) else (fields[r], f"{r}: {why[r]}") for r in reasons]


def _recent_distinct(items: np.ndarray, known: dict, n: int) -> list[str]:
    """The `n` most recently bought distinct items the model knows, oldest of them first."""
    out: dict[str, None] = {}
    for i in items[::-1]:
        if i in known and i not in out:
            out[i] = None
            if len(out) == n:
                break
    return list(out)[::-1]


def _freeze_heap(thaw: bool = False) -> None:
    """Move the snapshot's millions of long-lived objects out of the garbage collector's sight (gc.freeze).

    Otherwise every full collection walks them all, a pause of about half a second at 1M members that
    lands on whatever requests are in flight. `thaw` first releases the previous freeze, so a reloaded
    snapshot's predecessor can be collected: a pause of the whole process, so `reload` uses `_refreeze` and
    comes here only when the replaced snapshot is kept alive by a cycle. Only the
    snapshot is frozen: objects of requests in flight must stay collectable (frozen cycles would leak).
    """
    if thaw:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
    _trim_malloc()
    if _gc_watch not in gc.callbacks:
        gc.callbacks.append(_gc_watch)


def _refreeze(old: weakref.ref, wait_s: float = 5.0) -> None:
    """After a reload: freeze the new snapshot without a full collection, once the old one is gone.

    The old snapshot holds no reference cycle, so reference counting frees it as soon as the requests still
    using it finish. A full collection after `gc.unfreeze()` walks every object of the process (~0.8M with
    torch and MLflow loaded) while holding the GIL: 0.6-1.1 s in which no request was answered, for about 10
    small objects collected. Only when the old snapshot outlives `wait_s` (a cycle) is that collection run.
    """
    deadline = time.monotonic() + wait_s
    while old() is not None and time.monotonic() < deadline:  # requests in flight still read it
        time.sleep(0.02)
    if old() is not None:
        _log.warning("the replaced snapshot is still referenced after %.0f s: full collection", wait_s)
        _freeze_heap(thaw=True)
        return
    gc.collect(1)
    gc.freeze()
    _trim_malloc()


def _trim_malloc() -> None:
    """Hand the heap's free pages back to the OS (glibc keeps the load's temporaries mapped: ~0.2 GiB at 1M)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


_gc_started: list[float] = []
_log = logging.getLogger(__name__)


def _gc_watch(phase: str, info: dict) -> None:
    """Log collections that pause the worker for over 20 ms (a sign that something keeps many objects alive)."""
    if phase == "start":
        _gc_started[:] = [time.perf_counter()]
        return
    if _gc_started and (took := time.perf_counter() - _gc_started[0]) > 0.02:
        _log.warning("gc generation %s took %.0f ms (collected %s)", info.get("generation"),
                                            took * 1e3, info.get("collected"))  # fmt: skip
