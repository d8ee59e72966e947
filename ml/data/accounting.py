"""Money accounted like rows: per file, amount read = amount kept (sales - refunds) + amount quarantined; and from
raw.orders to staging, the lines' sum = staged sales - staged refunds. Exact decimals, shown to the cent.

Pure functions over ingestion's FileReports and the warehouse, shared by the Dagster assets and `clv predict`.
"""
from __future__ import annotations

from decimal import Decimal

import duckdb

from ml.data.ingest import REASONS, FileReport

CENT = Decimal("0.01")


def cents(value) -> Decimal:
    return Decimal(value or 0).quantize(CENT)


def file_rows(reports: list[FileReport]) -> list[dict]:
    """One row per ingested orders file: rows and money read, kept and quarantined (to the cent)."""
    return [{
        "file": r.file, "rows_read": r.rows_read, "rows_kept": r.rows_accepted,
        "rows_quarantined": r.rows_quarantined, "amount_read": cents(r.amount_read),
        "sales_kept": cents(r.sales_kept), "refunds_kept": cents(r.refunds_kept), "amount_kept": cents(r.amount_kept),
        "amount_quarantined": cents(r.amount_quarantined), "rows_without_amount": r.rows_without_amount,
    } for r in reports if r.table == "orders" and not r.skipped]


def balances(row: dict) -> bool:
    """Read = kept + quarantined, and kept = sales - refunds, to the cent."""
    return (row["amount_read"] == row["amount_kept"] + row["amount_quarantined"]
            and row["amount_kept"] == row["sales_kept"] - row["refunds_kept"])


def reason_counts(reports: list[FileReport]) -> dict[str, int]:
    """Quarantined rows per reason code over `reports`, in REASONS order."""
    counts: dict[str, int] = {}
    for r in reports:
        for code, n in r.reasons.items():
            counts[code] = counts.get(code, 0) + n
    return {code: counts[code] for code in REASONS if code in counts}


def staging_reconciliation(con: duckdb.DuckDBPyConnection) -> dict[str, Decimal]:
    """raw.orders' lines against the staged orders and refunds: `difference` must be 0.00."""
    raw_amount, sales, refunds, linked, loose = con.execute("""SELECT
        (SELECT coalesce(sum(CAST(amount AS DECIMAL(38, 6))), 0) FROM raw.orders),
        (SELECT coalesce(sum(CAST(gross_amount AS DECIMAL(38, 6))), 0) FROM main.stg_shop__orders),
        (SELECT coalesce(sum(CAST(refund_amount AS DECIMAL(38, 6))), 0) FROM main.stg_shop__refunds),
        (SELECT coalesce(sum(CAST(refund_amount AS DECIMAL(38, 6))), 0) FROM main.stg_shop__refunds WHERE is_linked),
        (SELECT coalesce(sum(CAST(refund_amount AS DECIMAL(38, 6))), 0) FROM main.stg_shop__refunds WHERE NOT is_linked)
        """).fetchone()
    return {"raw_amount": cents(raw_amount), "staged_sales": cents(sales), "staged_refunds": cents(refunds),
            "refunds_of_staged_orders": cents(linked), "refunds_without_sale_line": cents(loose),
            "difference": cents(raw_amount) - (cents(sales) - cents(refunds))}


def markdown(rows: list[dict]) -> str:
    """A small markdown table of dict rows (the keys of the first row are the header)."""
    if not rows:
        return "(none)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_show(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def _show(value) -> str:
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
