"""Validation as SQL over a loaded file: typed columns and the first rule each row breaks (its quarantine reason),
timestamps into the configured zone, order lines signed (refunds and cancellations negative), duplicates and
order ids that name two customers."""
from __future__ import annotations

from ml.data.ingest.files import ident, sql_str
from ml.data.ingest.schema import MAX_AMOUNT, STATUSES, OrderOptions, TableSpec
from ml.data.simulator import EVENT_TYPES

OFFSET = r"([+-][0-9]{2}(:?[0-9]{2})?|[zZ])$"  # a timestamp that names its UTC offset


def ts_expr(col: str, fmt: str | None, zone: str) -> str:
    """A timestamp in `zone`: one with a UTC offset is converted to it, one without is taken to be in it."""
    z = sql_str(zone)
    iso = (f"CASE WHEN regexp_matches({col}, '{OFFSET}') "
           f"THEN timezone('{z}', try_cast({col} AS TIMESTAMPTZ)) ELSE try_cast({col} AS TIMESTAMP) END")
    if fmt:  # the user's format first (with %z it yields an instant); ISO too: a Parquet file's timestamps as text
        parsed = f"try_strptime({col}, '{sql_str(fmt)}')"
        user = f"timezone('{z}', {parsed})" if "%z" in fmt or "%Z" in fmt else parsed
        return f"coalesce({user}, {iso})"
    return iso


def validate(con, table, spec: TableSpec, source, present, timestamp_format, pseudonym_key,
              options: OrderOptions) -> str:
    """Typed columns plus `reason` (a code of REASONS, NULL when the row is valid), `reason_field` and
    `reason_value` into `_checked`; returns the SQL of a quarantined row's record. The first rule a row breaks is
    its reason."""
    def raw(col: str) -> str:
        src = source.get(col, col)
        return f"nullif(trim({ident(src)}), '')" if src in present else "NULL"

    typed, rules = {}, []  # rules: (condition, reason code, our column, the value it read)
    cid = raw("customer_id")
    if pseudonym_key:
        # keyed hash: the same customer keeps one id across files; the key never leaves the environment
        key = sql_str(pseudonym_key)
        typed["customer_id"] = (f"CASE WHEN {cid} IS NULL THEN NULL "
                                f"ELSE 'P' || left(sha256('{key}' || ':' || {cid}), 24) END")
    else:
        typed["customer_id"] = cid
    rules.append((f"{cid} IS NULL", "missing_customer_id", "customer_id", "NULL"))
    for col, sql_type in spec.types.items():
        if col == "customer_id":
            continue
        value = raw(col)
        if sql_type == "TIMESTAMP":
            typed[col] = ts_expr(value, timestamp_format, options.timezone)
            if col in spec.required:
                rules.append((f"{value} IS NULL", "missing_timestamp", col, "NULL"))
            rules.append((f"{value} IS NOT NULL AND {typed[col]} IS NULL", "unparseable_timestamp", col, value))
            rules.append((f"{typed[col]} > current_timestamp + INTERVAL 1 DAY", "future_timestamp", col, value))
        elif sql_type in ("DOUBLE", "INTEGER"):
            typed[col] = f"try_cast({value} AS {sql_type})"
            rules.append((f"{value} IS NOT NULL AND {typed[col]} IS NULL", "non_numeric_amount", col, value))
        else:
            typed[col] = value
    if table == "orders":
        order_semantics(typed, rules, raw, source, present, options)
        # the line's identity: every column of the export (mapped or not), the customer as stored (a pseudonym)
        others = [c for c in sorted(present) if c != source["customer_id"]]
        typed["_line_key"] = ("md5(CAST(struct_pack(" + ", ".join(
            [f"c{i} := {ident(c)}" for i, c in enumerate(others)] + [f"cid := {typed['customer_id']}"]) +
            ") AS VARCHAR))")
    if table == "events":
        typed["event_type"] = f"lower({raw('event_type')})"
        rules.append((f"{typed['event_type']} NOT IN {tuple(EVENT_TYPES)}", "unknown_event_type", "event_type",
                      raw("event_type")))
    cols = ", ".join(f"{expr} AS {col}" for col, expr in typed.items())
    case = lambda pick: "CASE " + " ".join(f"WHEN {r[0]} THEN {pick(r)}" for r in rules) + " ELSE NULL END"  # noqa: E731
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _checked AS
        SELECT {cols}, {case(lambda r: repr(r[1]))} AS reason, {case(lambda r: repr(r[2]))} AS reason_field,
               CAST({case(lambda r: r[3])} AS VARCHAR) AS reason_value, _row
        FROM _incoming""")
    # a quarantined row's record as the export had it (_incoming i), except the customer id: its pseudonym (_checked c)
    fields = {c: f"i.{ident(c)}" for c in sorted(present)}
    if pseudonym_key and source["customer_id"] in fields:
        fields[source["customer_id"]] = "c.customer_id"
    return "to_json(struct_pack(" + ", ".join(f"{ident(c)} := {e}" for c, e in fields.items()) + "))::VARCHAR"


def order_semantics(typed: dict, rules: list, raw, source: dict, present: set, options: OrderOptions) -> None:
    """An order line's signed amount (refunds and cancellations negative), our status, and an order id.

    amount: the export's amount, else quantity x unit_price. A line is a refund when its status says so, its
    amount or quantity is negative, or its order id starts with the cancellation prefix; its amount is then
    -|amount| and its status 'returned' (or 'cancelled' when the status or the prefix says cancelled).
    """
    given = typed["amount"] if source["amount"] in present else f"{typed['quantity']} * {typed['unit_price']}"
    status_in = f"lower({raw('status')})"
    mapped = "CASE " + " ".join(f"WHEN {status_in} = '{k}' THEN '{v}'" for k, v in STATUSES.items()) + " END"
    order_id = raw("order_id")
    prefix = (f"starts_with({order_id}, '{sql_str(options.cancellation_prefix)}')"
              if options.cancellation_prefix else "false")
    refund = (f"(coalesce({mapped} IN ('returned', 'cancelled'), false) OR {given} < 0 "
              f"OR coalesce({typed['quantity']} < 0, false) OR coalesce({prefix}, false))")
    typed["amount"] = f"CASE WHEN {refund} THEN -abs({given}) ELSE {given} END"
    typed["status"] = (f"CASE WHEN NOT {refund} THEN 'completed' "
                       f"WHEN {mapped} = 'cancelled' OR coalesce({prefix}, false) THEN 'cancelled' ELSE 'returned' END")
    # an export without order ids: the lines of one customer at one moment are one order
    typed["order_id"] = (f"coalesce({order_id}, 'L' || md5(concat_ws('|', {typed['customer_id']}, "
                         f"{raw('order_ts')})))")
    amount_src = "amount" if source["amount"] in present else "unit_price"
    rules.append((f"{given} IS NULL AND {raw(amount_src)} IS NULL", "missing_amount", amount_src, "NULL"))
    rules.append((f"abs({given}) > {MAX_AMOUNT}", "absurd_amount", amount_src, f"CAST({given} AS VARCHAR)"))
    rules.append((f"{raw('status')} IS NOT NULL AND {mapped} IS NULL", "unknown_status", "status", raw("status")))


def flag_duplicates_and_conflicts(con) -> None:
    """Among the valid lines: a line identical in every column of the export (its `_line_key`) to an earlier one
    (in this file or already in raw.orders) is a duplicate; the lines of an order id that names two customers (here or with raw.orders) are
    a conflict. Both are quarantined; the first of identical lines is kept."""
    con.execute("""UPDATE _checked SET reason = 'duplicate_row', reason_field = NULL, reason_value = order_id
        WHERE _row IN (
            SELECT _row FROM (
                SELECT _row, _line_key, row_number() OVER (PARTITION BY _line_key ORDER BY _row) AS nth
                FROM _checked WHERE reason IS NULL)
            WHERE nth > 1 OR _line_key IN (SELECT _line_key FROM raw.orders WHERE _line_key IS NOT NULL))""")
    con.execute("""UPDATE _checked SET reason = 'conflicting_customer', reason_field = 'order_id',
            reason_value = order_id
        WHERE reason IS NULL AND order_id IN (
            SELECT order_id FROM (
                SELECT order_id, customer_id FROM _checked WHERE reason IS NULL
                UNION SELECT order_id, customer_id FROM raw.orders)
            GROUP BY 1 HAVING count(DISTINCT customer_id) > 1)""")
