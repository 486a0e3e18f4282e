"""Human-readable summaries printed by the CLI."""

from __future__ import annotations


def print_prepare_report(report: dict) -> None:
    """Rows in = kept + quarantined, by table and reason."""
    if report.get("status") == "already_loaded":
        print(f"{report['dataset']}: batch {report['batch'][:12]} already loaded; nothing added")
        return
    files = ", ".join(f"{k} ({v:,} rows)" for k, v in report["files"].items())
    print(f"prepared {report['dataset']} from {report['source']}: {files}")
    print(f"{'table':<10} {'rows in':>10} {'kept':>10} {'quarantined':>12}  reasons")
    for table, c in report["tables"].items():
        quarantined = sum(c["quarantined"].values())
        reasons = ", ".join(f"{k} {v:,}" for k, v in c["quarantined"].items()) or "-"
        extra = f" (+{c['derived_from_events']:,} from events)" if c.get("derived_from_events") else ""
        print(f"{table:<10} {c['rows_in']:>10,} {c['kept']:>10,} {quarantined:>12,}  {reasons}{extra}")
