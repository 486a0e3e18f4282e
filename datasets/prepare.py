"""`tailor prepare`: raw source -> validated, cleaned, pseudonymized canonical tables.

Every row read is either kept or quarantined with a reason. The report's figures are the rows
actually written: after the staging folder is complete, its tables and quarantine files are
counted again, and the run fails unless rows in = rows written to the tables + rows written to
the quarantine (per reason) + rows of erased members (counted, never written).
Validation errors stop the run before anything is written; appending a batch is idempotent by
content and atomic.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from datasets import erasure, sources
from datasets import quarantine as q
from datasets.layout import Layout
from datasets.membership import derive_tiers
from datasets.pseudonym import load_key, pseudonymize, pseudonymize_fast
from datasets.schema import TABLES, arrow_schema, conform, empty
from datasets.settings import PrepareConfig
from datasets.sources.base import RawTables, content_hash
from datasets.store import (
    Dataset,
    fingerprint,
    partition_of,
    staged,
    write_json,
    write_parquet,
    write_table,
)

log = logging.getLogger(__name__)
EVENT_COLS = TABLES["events"].names
_SORT = {
    "members": ["member_id"],
    "items": ["item_id"],
    "offers": ["offer_id"],
    "exposures": ["member_id", "offer_id", "ts"],
    "events": ["member_id", "ts", "event_type", "item_id", "session_id", "amount", "quantity"],
}


def prepare(
    source: str, path: str | Path, cfg: PrepareConfig, dataset: str | None = None, append: bool = False
) -> dict:
    """Prepare (or with `append`, add a batch to) a dataset; returns the report."""
    raw = sources.get(source).read(Path(path), cfg)
    target = Layout.from_env().data(dataset or source)
    old = Dataset(target) if append and (target / "manifest.json").exists() else None
    batch_id = content_hash(raw.paths)
    if old is not None and any(b["id"] == batch_id for b in old.manifest["batches"]):
        log.info("batch %s already loaded into %s: nothing added", batch_id[:12], target.name)
        out = {"dataset": target.name, "status": "already_loaded", "batch": batch_id}
        if old.erased:  # members erased since: their rows leave the stored tables now, batch or no batch
            out["erasure"] = erasure.apply_erasure(target)
        return out
    namespace = old.manifest["id_namespace"] if old else raw.id_namespace
    key = load_key()
    report: dict = {"dataset": target.name, "source": source, "batch": batch_id, "files": raw.files, "tables": {}}
    erased = erasure.tombstones_of(target)
    # rows of earlier batches written again (stored rows less erased and replaced ones), per table and in the quarantine
    carried: dict[str, int] = {}
    carried_q: dict[str, Counter] = {t: Counter() for t in TABLES}
    with staged(target) as stage:
        quarantined: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}
        if old is not None:
            for t in TABLES:
                prev = erasure.drop(old.quarantine(t), erased)
                if len(prev):
                    quarantined[t].append(prev)
                    carried_q[t] = Counter(prev["reason"].astype(str))
        n_parts = old.manifest["n_partitions"] if old else max(1, -(-raw.events_rows_hint // cfg.rows_per_partition))
        events_info = _events(raw, key, namespace, cfg, stage, old, n_parts, report, quarantined, erased, carried)
        members = _members(raw, key, namespace, cfg, old, events_info, report, quarantined, erased, carried)
        write_table(stage, "members", members)
        for t in ("items", "offers", "exposures"):
            frame = _small(t, getattr(raw, t), key, namespace, old, report, quarantined, erased, carried)
            write_table(stage, t, frame)
        for t, frames in quarantined.items():
            if frames:
                write_parquet(pd.concat(frames, ignore_index=True), stage / "quarantine" / f"{t}.parquet")
        _check_written(stage, report, carried, carried_q)
        _check_conservation(report)
        batches = (old.manifest["batches"] if old else []) + [{"id": batch_id, "source": source, "files": raw.files}]
        write_json(stage / "report.json", report)
        manifest = {
            "dataset": target.name,
            "source": old.manifest["source"] if old else source,
            "id_namespace": namespace,
            "timezone": old.manifest["timezone"] if old else raw.timezone,
            "has_tiers": bool(old.manifest["has_tiers"]) if old else raw.has_tiers,
            "tier_rules": cfg.tiers.model_dump(),  # features derive tiers with the same rules
            "n_partitions": n_parts,
            "batches": batches,
            "ts_min": events_info["ts_min"],
            "ts_max": events_info["ts_max"],
            "rows": {t: int(r) for t, r in events_info["rows"].items()},
        }
        if erased:
            manifest["erasure"] = erasure.stamp(erased)
        manifest["fingerprint"] = fingerprint(stage)
        write_json(stage / "manifest.json", manifest)
    ev = report["tables"]["events"]
    log.debug(  # the caller prints the whole report
        "prepared %s from %s: events %d in, %d kept, %d quarantined; fingerprint %s",
        target.name,
        source,
        ev["rows_in"],
        ev["kept"],
        ev["rows_in"] - ev["kept"],
        manifest["fingerprint"][:12],
    )
    return report


def _events(
    raw: RawTables,
    key: bytes,
    ns: str,
    cfg: PrepareConfig,
    stage: Path,
    old: Dataset | None,
    n_parts: int,
    report: dict,
    quarantined: dict,
    erased: frozenset[str] | set[str] = frozenset(),
    carried: dict[str, int] | None = None,
) -> dict:
    """Clean event chunks into member-hash partitions; dedupe each partition; drop erased members' rows.

    The batch's `kept` figure is the rows written to the parts less the stored rows written again.
    """
    carried = {} if carried is None else carried
    carried["events"] = 0
    tmp = stage / "_tmp"
    counts = {"rows_in": 0, "kept": 0, "quarantined": {}}
    ts_min_ok = pd.Timestamp(cfg.ts_min, tz="UTC")
    ts_max_ok = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=cfg.max_future_days)
    for i, chunk in enumerate(tqdm(raw.events(), desc="events: clean", unit="chunk", leave=False)):
        counts["rows_in"] += len(chunk)
        member = chunk["member_id"].astype("string").str.strip()
        q.flag(chunk, member.isna() | (member == ""), "missing_member_id")
        q.flag(chunk, chunk["ts"].isna(), "missing_ts")
        q.flag_event_values(chunk, ts_min_ok, ts_max_ok)
        chunk["member_id"] = pseudonymize(member.where(member != ""), key, ns)
        chunk["session_id"] = pseudonymize_fast(chunk["session_id"], key, ns + ":session")
        _mark_erased(chunk, erased)
        kept, bad = q.split(chunk)
        _add(counts["quarantined"], q.counts(bad))
        bad = erasure.drop(bad, erased)  # counted, never kept
        if len(bad):
            quarantined["events"].append(q.to_side_table("events", bad, EVENT_COLS))
        kept = conform("events", kept, file=",".join(raw.files)).assign(
            _source_file=kept[q.SOURCE_FILE].to_numpy(), _source_row=kept[q.SOURCE_ROW].to_numpy()
        )
        part = partition_of(kept["member_id"], n_parts)
        for p, piece in kept.groupby(part.to_numpy(), sort=True):
            write_parquet(piece, tmp / f"p{p:05d}" / f"c{i:06d}.parquet")
    first_seen, tiers, rows, lo, hi = [], [], 0, [], []
    for p in tqdm(range(n_parts), desc="events: dedupe", unit="part", leave=False):
        frames = [pd.read_parquet(f) for f in sorted((tmp / f"p{p:05d}").glob("*.parquet"))]
        if old is not None and (old.path / "events" / f"part-{p:05d}.parquet").exists():
            stored = erasure.drop(pd.read_parquet(old.path / "events" / f"part-{p:05d}.parquet"), erased)
            frames.insert(0, stored)
            carried["events"] += len(stored)  # deduped when stored: kept first, never a duplicate
        if not frames:
            continue
        df = pd.concat(frames, ignore_index=True)
        row_hash = pd.util.hash_pandas_object(df[EVENT_COLS], index=False).to_numpy()
        dup = _exact_duplicates(df, row_hash)
        bad = df.loc[dup].assign(**{q.REASON: "duplicate"})
        if len(bad):
            quarantined["events"].append(q.to_side_table("events", bad, EVENT_COLS))
        _add(counts["quarantined"], q.counts(bad))
        kept = df.loc[~dup, EVENT_COLS]
        kept = kept.iloc[_content_order(kept, row_hash[~dup])].reset_index(drop=True)
        write_parquet(kept, stage / "events" / f"part-{p:05d}.parquet", arrow_schema("events"))
        rows += len(kept)
        first_seen.append(kept.groupby("member_id", sort=False)["ts"].min())
        if len(kept):
            lo.append(kept["ts"].min())
            hi.append(kept["ts"].max())
        tiers.append(kept.loc[kept["event_type"] == "purchase", ["member_id", "ts", "event_type", "amount"]])
    shutil.rmtree(tmp, ignore_errors=True)
    counts["kept"] = rows - carried["events"]  # written, not inferred: _check_conservation compares it with rows in
    report["tables"]["events"] = counts
    purchases = pd.concat(tiers, ignore_index=True) if tiers else empty("events")
    return {
        "first_seen": pd.concat(first_seen) if first_seen else pd.Series(dtype="datetime64[us, UTC]"),
        "purchases": purchases,
        "ts_min": str(min(lo)) if lo else None,
        "ts_max": str(max(hi)) if hi else None,
        "rows": {"events": rows},
    }


def _exact_duplicates(df: pd.DataFrame, row_hash: np.ndarray) -> np.ndarray:
    """Rows equal to an earlier row; hashes find candidates, an exact comparison confirms them."""
    candidates = pd.Series(row_hash).duplicated(keep=False).to_numpy()
    dup = np.zeros(len(df), dtype=bool)
    if candidates.any():
        dup[np.flatnonzero(candidates)] = df.loc[candidates].duplicated(subset=EVENT_COLS, keep="first").to_numpy()
    return dup


def _content_order(df: pd.DataFrame, row_hash: np.ndarray) -> np.ndarray:
    """Order by member, time, then row content: the same rows give the same bytes in any input order."""
    member_codes, _ = pd.factorize(df["member_id"], sort=True)
    ts = df["ts"].astype("int64").to_numpy()
    return np.lexsort((row_hash, ts, member_codes))


def _members(
    raw: RawTables,
    key: bytes,
    ns: str,
    cfg: PrepareConfig,
    old: Dataset | None,
    ev: dict,
    report: dict,
    quarantined: dict,
    erased: frozenset[str] | set[str] = frozenset(),
    carried: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Members from the source plus every member seen in events; tiers derived if absent."""
    batch = _small("members", raw.members, key, ns, None, report, quarantined, erased)
    stored = erasure.drop(old.table("members"), erased) if old is not None else None
    if carried is not None:  # stored members the batch does not replace
        carried["members"] = 0 if stored is None else int((~stored["member_id"].isin(batch["member_id"])).sum())
    base = pd.concat([stored, batch], ignore_index=True) if stored is not None else batch
    base = base.drop_duplicates("member_id", keep="last")
    seen = ev["first_seen"]
    if old is not None and len(base):  # a member's first event may be in an earlier batch
        seen = pd.concat([seen, base.set_index("member_id")["joined_at"].dropna()]).groupby(level=0).min()
    # Sources without a join date: the first event stands in for it (the member existed then).
    if len(seen):
        base["joined_at"] = base["joined_at"].fillna(base["member_id"].map(seen).astype(base["joined_at"].dtype))
    new_ids = seen.index[~seen.index.isin(base["member_id"])]
    derived = pd.DataFrame({"member_id": new_ids.astype(str), "joined_at": seen.loc[new_ids].to_numpy()})
    report["tables"]["members"]["derived_from_events"] = len(derived)
    members = pd.concat([base, derived], ignore_index=True) if len(derived) else base
    if not raw.has_tiers and len(ev["purchases"]):
        as_of = pd.Timestamp(ev["ts_max"]) + pd.Timedelta(microseconds=1)
        tiers = derive_tiers(ev["purchases"], cfg.tiers, as_of).set_index("member_id")
        members["tier"] = members["member_id"].map(tiers["tier"])
        members["points_balance"] = members["member_id"].map(tiers["points_balance"])
    members = conform("members", members)
    return members.sort_values("member_id", kind="stable").reset_index(drop=True)


def _small(
    table: str,
    frame: pd.DataFrame | None,
    key: bytes,
    ns: str,
    old: Dataset | None,
    report: dict,
    quarantined: dict,
    erased: frozenset[str] | set[str] = frozenset(),
    carried: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Clean a small table: missing ids, duplicate keys or rows, non-positive prices."""
    spec = TABLES[table]
    if frame is None or len(frame) == 0:
        report["tables"][table] = {"rows_in": 0, "kept": 0, "quarantined": {}}
        out = empty(table)
        return _merge_old(table, out, old, erased, carried)
    frame = frame.copy()
    if q.SOURCE_FILE not in frame.columns:
        frame[q.SOURCE_FILE], frame[q.SOURCE_ROW] = "", np.arange(len(frame))
    if "member_id" in frame.columns:
        member = frame["member_id"].astype("string").str.strip()
        q.flag(frame, member.isna() | (member == ""), "missing_member_id")
        frame["member_id"] = pseudonymize(member.where(member != ""), key, ns)
        _mark_erased(frame, erased)
    if table == "items":
        q.flag(frame, pd.to_numeric(frame["price"], errors="coerce") <= 0, "non_positive_price")
    if spec.key:  # keyed tables: one row per key (a later batch may update it)
        id_col = spec.key[0]
        q.flag(frame, frame[id_col].isna(), f"missing_{id_col}")
        q.flag(frame, frame.duplicated(id_col, keep="first"), f"duplicate_{id_col}")
    else:  # event-like tables: exact duplicates, within the batch and against stored rows
        cols = [c for c in spec.names if c in frame.columns]
        q.flag(frame, frame.duplicated(cols, keep="first"), "duplicate")
        if old is not None and len(prev := old.table(table)):
            typed = conform(table, frame.assign(member_id=frame["member_id"].fillna("?")))[cols]
            seen = pd.MultiIndex.from_frame(prev[cols].astype(str))
            q.flag(frame, pd.MultiIndex.from_frame(typed.astype(str)).isin(seen), "duplicate")
    kept, bad = q.split(frame)
    report["tables"][table] = {"rows_in": len(frame), "kept": len(kept), "quarantined": q.counts(bad)}
    bad = erasure.drop(bad, erased)  # counted, never kept
    if len(bad):
        quarantined[table].append(q.to_side_table(table, bad, spec.names))
    out = conform(table, kept, file=",".join(sorted(set(frame[q.SOURCE_FILE].astype(str))))).reset_index(drop=True)
    return _merge_old(table, out, old, erased, carried)


def _merge_old(
    table: str,
    new: pd.DataFrame,
    old: Dataset | None,
    erased: frozenset[str] | set[str] = frozenset(),
    carried: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Upsert a batch into the stored table: keyed rows are replaced, others appended once; erased members go.

    `carried[table]` gets the stored rows that stay: all of them, less those whose key the batch replaces
    (rows equal to a stored one were quarantined as duplicates before).
    """
    if carried is not None:
        carried[table] = 0
    if old is not None:
        prev = erasure.drop(old.table(table), erased)
        if carried is not None:
            key = list(TABLES[table].key)
            carried[table] = int((~prev[key[0]].isin(new[key[0]])).sum()) if key else len(prev)
        if len(prev):
            both = pd.concat([prev, new], ignore_index=True)
            key = list(TABLES[table].key) or [c for c in TABLES[table].names if c in both.columns]
            new = both.drop_duplicates(key, keep="last") if TABLES[table].key else both.drop_duplicates(key)
    return new.sort_values(_SORT[table], kind="stable").reset_index(drop=True)


def _mark_erased(frame: pd.DataFrame, erased: frozenset[str] | set[str]) -> None:
    """Rows of erased members get the reason `erased`, whatever else was wrong with them (their content goes)."""
    m = erasure.mask(frame, erased)
    if m.any():
        if q.REASON not in frame.columns:
            frame[q.REASON] = pd.Series(pd.NA, index=frame.index, dtype="string")
        frame.loc[m, q.REASON] = erasure.REASON


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0) + v


def _rows_written(stage: Path, table: str) -> int:
    """Rows in the staged table's Parquet file(s), from their footers."""
    paths = sorted((stage / "events").glob("part-*.parquet")) if table == "events" else [stage / f"{table}.parquet"]
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths if p.exists())


def _check_written(stage: Path, report: dict, carried: dict[str, int], carried_q: dict[str, Counter]) -> None:
    """The report's figures are what the staging folder holds: fail loudly on any row counted but not written.

    For each table, the rows in its file(s) less the stored rows written again (and less the members derived
    from events) must equal `kept`; the quarantine file's rows per reason, less the stored quarantine, must
    equal `quarantined`, except `erased` rows, which are counted and never written anywhere.
    """
    problems = []
    for table, c in report["tables"].items():
        kept = _rows_written(stage, table) - carried.get(table, 0) - c.get("derived_from_events", 0)
        side = stage / "quarantine" / f"{table}.parquet"
        reasons = Counter(pd.read_parquet(side, columns=["reason"])["reason"].astype(str) if side.exists() else [])
        reasons.subtract(carried_q.get(table, Counter()))
        written_q = {k: v for k, v in reasons.items() if v}
        counted_q = {k: v for k, v in c["quarantined"].items() if k != erasure.REASON and v}
        if kept != c["kept"]:
            problems.append(f"{table}: {c['kept']} rows counted as kept but {kept} written")
        if written_q != counted_q:
            problems.append(f"{table}: quarantine counted {counted_q} but written {written_q}")
    if problems:
        raise AssertionError("row accounting broken (a bug): " + "; ".join(problems))


def _check_conservation(report: dict) -> None:
    """rows in = rows kept + rows quarantined, for every table (a failure is a bug)."""
    for table, c in report["tables"].items():
        if c["rows_in"] != c["kept"] + sum(c["quarantined"].values()):
            raise AssertionError(f"row accounting broken for {table}: {c}")
