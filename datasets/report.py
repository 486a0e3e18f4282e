"""Human-readable summaries printed by the CLI."""

from __future__ import annotations


def print_prepare_report(report: dict) -> None:
    """Rows in = kept + quarantined, by table and reason."""
    if report.get("status") == "already_loaded":
        print(f"{report['dataset']}: batch {report['batch'][:12]} already loaded; nothing added")
        if "erasure" in report:
            print_erasure_report(report["erasure"])
        return
    files = ", ".join(f"{k} ({v:,} rows)" for k, v in report["files"].items())
    print(f"prepared {report['dataset']} from {report['source']}: {files}")
    print(f"{'table':<10} {'rows in':>10} {'kept':>10} {'quarantined':>12}  reasons")
    for table, c in report["tables"].items():
        quarantined = sum(c["quarantined"].values())
        reasons = ", ".join(f"{k} {v:,}" for k, v in c["quarantined"].items()) or "-"
        extra = f" (+{c['derived_from_events']:,} from events)" if c.get("derived_from_events") else ""
        print(f"{table:<10} {c['rows_in']:>10,} {c['kept']:>10,} {quarantined:>12,}  {reasons}{extra}")


def print_erasure_report(report: dict) -> None:
    """What `tailor erase` removed (or, with a dry run, would remove) from a prepared dataset."""
    rows = report["rows"]
    verb = {"dry_run": "would remove", "erased": "removed"}.get(report["status"], "found")
    print(f"{report['dataset']}: {report['tombstones']:,} erased members; {verb} {sum(rows.values()):,} rows")
    for path, n in rows.items():
        print(f"  {path:<40} {n:>10,}")
    if report["status"] == "dry_run" and rows:
        print("run again with --apply to rewrite the files without them")
