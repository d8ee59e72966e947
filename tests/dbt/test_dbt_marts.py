"""Values of the dbt marts on a hand-made shop (see conftest.base_frames), leakage, and the orders-only case.

Cutoffs under BASE_VARS: score 2025-03-31, holdout 2025-03-01, train 2025-01-30 (horizon 30 days).
"""
from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

SCORE, HOLDOUT, TRAIN = date(2025, 3, 31), date(2025, 3, 1), date(2025, 1, 30)

INTERACTION_COLUMNS = [
    "views_total", "views_30d", "searches_30d", "carts_total", "carts_30d", "cart_to_purchase",
    "reviews_total", "likes_total", "shares_total", "events_30d", "events_90d", "days_since_last_event",
]


def row(frame: pd.DataFrame, customer_id: str, cutoff: date | None = None) -> dict:
    selected = frame[frame["customer_id"] == customer_id]
    if cutoff is not None:
        selected = selected[selected["cutoff_date"] == pd.Timestamp(cutoff)]
    assert len(selected) == 1, f"expected one row for {customer_id} at {cutoff}, got {len(selected)}"
    return selected.iloc[0].to_dict()


def assert_values(actual: dict, expected: dict) -> None:
    """Compare each expected key; floats to 1e-4, None means NULL (NaN/NaT/None/pd.NA)."""
    mismatches = {}
    for key, want in expected.items():
        got = actual[key]
        if want is None:
            ok = got is None or pd.isna(got)
        elif isinstance(want, float):
            ok = got is not None and not pd.isna(got) and math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6)
        else:
            ok = not pd.isna(got) and got == want
        if not ok:
            mismatches[key] = (got, want)
    assert not mismatches, f"(got, expected): {mismatches}"


def at(frame: pd.DataFrame, cutoff: date) -> pd.DataFrame:
    return frame[frame["cutoff_date"] == pd.Timestamp(cutoff)].reset_index(drop=True)


# --- staging and intermediate -------------------------------------------------------------------------------


def test_cutoffs_step_back_one_horizon(warehouse):
    cutoffs = warehouse.table("cutoffs").sort_values("window_index")
    assert cutoffs["cutoff_date"].dt.date.tolist() == [SCORE, HOLDOUT, TRAIN]
    assert cutoffs["role"].tolist() == ["score", "holdout", "train"]
    assert cutoffs["window_index"].tolist() == [0, 1, 2]


def test_order_lines_are_summed_refunds_netted_and_cancellations_marked(warehouse):
    orders = warehouse.table("stg_shop__orders").set_index("order_id")
    assert sorted(orders.index) == sorted(["a1", "a2", "a3", "a4", "a5", "a6", "e1", "e2", "e3", "c1", "c2", "f1",
                                           "f2", "d1"])
    assert orders["is_cancelled"].to_dict() == {o: o == "a4" for o in orders.index}
    assert orders.loc["a4", "net_amount"] == 0.0
    a1 = orders.loc["a1"]
    assert (a1["gross_amount"], a1["returned_amount"], a1["net_amount"], a1["n_lines"]) == (100.0, 40.0, 60.0, 2)
    assert bool(a1["is_returned"]) and a1["order_date"] == pd.Timestamp("2025-01-05")
    assert a1["returned_date"] == pd.Timestamp("2025-01-10")
    assert orders.loc["a2", "net_amount"] == 50.0 and not orders.loc["a2", "is_returned"]
    assert not orders["is_outlier_iqr"].isna().any() and not orders["is_outlier_z"].isna().any()


def test_daily_activity_combines_orders_and_deduplicated_events(warehouse):
    daily = warehouse.table("int_customer_daily", "customer_id = 'A'").set_index("activity_date")
    assert_values(daily.loc[pd.Timestamp("2025-01-05")].to_dict(),
                  {"orders": 2, "spend": 150.0, "quantity": 3, "events": 0})
    # the partial refund of a1 books on the day it was issued (cash view): a point-in-time fact
    assert_values(daily.loc[pd.Timestamp("2025-01-10")].to_dict(), {"orders": 0, "spend": -40.0})
    assert_values(daily.loc[pd.Timestamp("2025-01-04")].to_dict(),
                  {"orders": 0, "spend": 0.0, "events": 3, "views": 1, "searches": 1, "carts": 1})
    assert pd.Timestamp("2025-02-15") not in daily.index  # the order cancelled that day nets to nothing


def test_int_customers_unions_all_ids_with_first_seen_date(warehouse):
    customers = warehouse.table("int_customers").set_index("customer_id")
    assert sorted(customers.index) == ["A", "B", "C", "D", "E", "F"]
    assert customers.loc["A", "first_seen_date"] == pd.Timestamp("2024-12-01")  # signup before first event/order
    assert customers.loc["A", "region"] == "EU"  # the earliest of the duplicated profiles
    assert customers.loc["F", "first_seen_date"] == pd.Timestamp("2025-01-02") and pd.isna(customers.loc["F", "region"])
    assert customers.loc["B", "first_order_date"] is pd.NaT or pd.isna(customers.loc["B", "first_order_date"])


# --- customer_features -------------------------------------------------------------------------------------


def test_feature_population_per_cutoff(warehouse):
    features = warehouse.table("customer_features")
    population = {c.date(): sorted(g["customer_id"]) for c, g in features.groupby("cutoff_date")}
    assert population == {
        TRAIN: ["A", "B", "C", "E", "F"],
        HOLDOUT: ["A", "B", "C", "E", "F"],
        SCORE: ["A", "B", "C", "D", "E", "F"],  # D is first seen on 2025-03-15
    }


def test_features_of_customer_a_at_holdout(warehouse):
    # orders <= 2025-03-01: a1 (net 60 after the 40 refund, 2 items, Sun 10h), a2 (50, Sun 18h), a3 (30, Mon 14h)
    a = row(warehouse.table("customer_features"), "A", HOLDOUT)
    assert_values(a, {
        "n_orders": 3, "total_spend": 140.0, "avg_order_value": 140 / 3, "std_order_value": 15.275252,
        "median_order_value": 50.0, "max_order_value": 60.0, "total_quantity": 4, "avg_quantity": 4 / 3,
        "n_returns": 1, "return_rate": 1 / 3,
        "recency_days": 26, "tenure_days": 90, "days_since_first_order": 55,
        "mean_interpurchase_days": 29.0, "std_interpurchase_days": None,
        "orders_7d": 0, "orders_30d": 1, "orders_90d": 3, "orders_365d": 3,
        "spend_30d": 30.0, "spend_90d": 140.0, "spend_365d": 140.0,
        "active_days_90d": 5, "order_hour_mean": 14.0, "weekend_order_share": 2 / 3,
        "btyd_frequency": 1, "btyd_recency_days": 29, "btyd_age_days": 55, "btyd_monetary": 30.0,
        "region": "EU", "device": "mobile", "channel": "ads",
        "views_total": 2, "views_30d": 1, "searches_30d": 0, "carts_total": 2, "carts_30d": 1,
        "cart_to_purchase": 1.5, "reviews_total": 1, "likes_total": 1, "shares_total": 1,
        "events_30d": 6, "events_90d": 9, "days_since_last_event": 4,
    })


def test_features_of_customer_a_at_train(warehouse):
    a = row(warehouse.table("customer_features"), "A", TRAIN)
    assert_values(a, {
        "n_orders": 2, "total_spend": 110.0, "avg_order_value": 55.0, "std_order_value": math.sqrt(50),
        "median_order_value": 55.0, "return_rate": 0.5, "recency_days": 25, "tenure_days": 60,
        "days_since_first_order": 25, "mean_interpurchase_days": None, "orders_7d": 0, "orders_30d": 2,
        "weekend_order_share": 1.0, "btyd_frequency": 0, "btyd_recency_days": 0, "btyd_age_days": 25,
        "btyd_monetary": 0.0, "views_total": 1, "carts_total": 1, "cart_to_purchase": 2.0, "days_since_last_event": 26,
    })


def test_features_of_a_customer_without_orders(warehouse):
    b = row(warehouse.table("customer_features"), "B", HOLDOUT)
    assert_values(b, {
        "n_orders": 0, "total_spend": 0.0, "avg_order_value": None, "std_order_value": None,
        "median_order_value": None, "max_order_value": None, "total_quantity": 0, "avg_quantity": None,
        "n_returns": 0, "return_rate": None, "recency_days": None, "tenure_days": 40, "days_since_first_order": None,
        "mean_interpurchase_days": None, "orders_365d": 0, "spend_365d": 0.0, "active_days_90d": 3,
        "order_hour_mean": None, "weekend_order_share": None,
        "btyd_frequency": 0, "btyd_recency_days": 0, "btyd_age_days": None, "btyd_monetary": 0.0,
        "region": "US", "views_total": 1, "views_30d": 0, "carts_total": 1, "carts_30d": 1, "cart_to_purchase": 0.0,
        "events_30d": 2, "events_90d": 3, "days_since_last_event": 3,
    })


def test_btyd_and_interpurchase_features(warehouse):
    features = warehouse.table("customer_features")
    # E: three 20.00 orders on 2024-12-10/20/30; C: 10.00 on 2024-06-01 and 15.00 on 2024-07-01, no profile, no events
    assert_values(row(features, "E", TRAIN), {
        "n_orders": 3, "total_spend": 60.0, "std_order_value": 0.0, "recency_days": 31, "tenure_days": 60,
        "mean_interpurchase_days": 10.0, "std_interpurchase_days": 0.0, "weekend_order_share": 0.0,
        "order_hour_mean": 12.0, "btyd_frequency": 2, "btyd_recency_days": 20, "btyd_age_days": 51,
        "btyd_monetary": 20.0,
    })
    assert_values(row(features, "C", TRAIN), {
        "n_orders": 2, "total_spend": 25.0, "recency_days": 213, "tenure_days": 243, "days_since_first_order": 243,
        "mean_interpurchase_days": 30.0, "orders_90d": 0, "orders_365d": 2, "btyd_frequency": 1,
        "btyd_recency_days": 30, "btyd_age_days": 243, "btyd_monetary": 15.0, "region": None,
        "views_total": 0, "cart_to_purchase": None, "days_since_last_event": None,
    })


def test_profile_attributes_wait_for_the_signup(warehouse):
    features = warehouse.table("customer_features")
    assert row(features, "D", SCORE)["region"] == "APAC"
    assert row(features, "B", TRAIN)["region"] == "US"  # signed up 2025-01-20 <= 2025-01-30


# --- labels, lifecycle, sequences ----------------------------------------------------------------------------


def test_labels_cover_every_featured_customer_at_labelled_cutoffs(warehouse):
    labels = warehouse.table("customer_labels")
    assert sorted(labels["cutoff_date"].dt.date.unique()) == [TRAIN, HOLDOUT]  # no labels at the score cutoff
    holdout = at(labels, HOLDOUT).set_index("customer_id")
    # (2025-03-01, 2025-03-31]: A's a5 (80.00); D is not featured at the holdout; a6 is after as_of
    assert holdout["future_value"].to_dict() == {"A": 80.0, "B": 0.0, "C": 0.0, "E": 0.0, "F": 0.0}
    assert holdout["future_orders"].to_dict() == {"A": 1, "B": 0, "C": 0, "E": 0, "F": 0}
    assert holdout["returned"].to_dict() == {"A": True, "B": False, "C": False, "E": False, "F": False}
    train = at(labels, TRAIN).set_index("customer_id")
    # (2025-01-30, 2025-03-01]: A's a3 (30.00) and F's f2 (60.00)
    assert train["future_value"].to_dict() == {"A": 30.0, "B": 0.0, "C": 0.0, "E": 0.0, "F": 60.0}
    assert train["returned"].sum() == 2


def test_lifecycle_stages(warehouse):
    lifecycle = warehouse.table("customer_lifecycle")
    stages = {c.date(): dict(zip(g["customer_id"], g["lifecycle_stage"])) for c, g in lifecycle.groupby("cutoff_date")}
    # thresholds from BASE_VARS: new <= 30 days, at_risk > 45, churn > 120, loyal >= 3 orders
    assert stages[TRAIN] == {"A": "new", "B": "potential", "C": "churned", "E": "at_risk", "F": "new"}
    # E at the train cutoff is at risk by rhythm: 31 days since the last order > 2 x 10-day gaps
    assert stages[HOLDOUT] == {"A": "loyal", "B": "potential", "C": "churned", "E": "at_risk", "F": "active"}
    assert stages[SCORE] == {"A": "loyal", "B": "potential", "C": "churned", "D": "new", "E": "at_risk", "F": "active"}


def test_sequences_are_sparse_weekly_buckets(warehouse):
    sequences = at(warehouse.table("customer_sequences"), HOLDOUT)
    # 4 weeks ending 2025-03-01: week 0 = (02-01, 02-08], ..., week 3 = (02-22, 03-01]
    got = {
        (r.customer_id, r.week_index): (r.orders, r.spend, r.views, r.searches, r.carts, r.engagements)
        for r in sequences.itertuples()
    }
    assert got == {
        ("A", 0): (1, 30.0, 0, 0, 0, 0),   # a3 on 02-03
        ("A", 1): (0, 0.0, 1, 0, 1, 1),    # view, cart, review on 02-10
        ("A", 3): (0, 0.0, 0, 0, 0, 2),    # like + share on 02-25 (purchase events are not in the sequence)
        ("B", 3): (0, 0.0, 0, 0, 1, 0),    # cart on 02-26; B's purchase-only week 1 is no row
        ("F", 1): (1, 60.0, 0, 0, 0, 0),   # f2 on 02-15
    }


def stream(warehouse, customer_id: str, cutoff: date) -> list[tuple]:
    events = at(warehouse.table("customer_events"), cutoff)
    events = events[events["customer_id"] == customer_id]
    return [(r.position, r.event_type, None if pd.isna(r.days_since_previous) else r.days_since_previous,
             r.days_before_cutoff, r.amount) for r in events.itertuples()]


def test_event_streams_are_the_newest_events_on_or_before_the_cutoff_capped(warehouse):
    # max_events 3: A's newest three by 2025-03-01 (a3 02-03, the 02-10 events and the cancelled a4 are older or
    # no order); the gap is to the previous event before the cap, at day granularity
    assert stream(warehouse, "A", HOLDOUT) == [
        (0, "purchase", 0, 4, 0.0), (1, "share", 0, 4, 0.0), (2, "like", 15, 4, 0.0)]
    # orders as known at the cutoff: a1 is 100.00 less the 40.00 refunded on 01-10; a2 the same day
    assert stream(warehouse, "A", TRAIN) == [
        (0, "order", 0, 25, 50.0), (1, "order", 1, 25, 60.0), (2, "add_to_cart", 0, 26, 0.0)]
    # shorter streams are not padded; the first event ever has no gap
    assert stream(warehouse, "C", SCORE) == [(0, "order", 30, 273, 15.0), (1, "order", None, 303, 10.0)]
    # D's first order (03-20) is after the holdout: no stream there yet
    assert stream(warehouse, "D", HOLDOUT) == []
    assert stream(warehouse, "D", SCORE) == [(0, "order", None, 11, 25.0)]
    events = warehouse.table("customer_events")
    assert events.groupby(["customer_id", "cutoff_date"]).size().max() == 3
    assert (events["days_before_cutoff"] >= 0).all()


def test_orders_only_streams_hold_orders(warehouse_orders_only):
    assert set(warehouse_orders_only.table("customer_events")["event_type"]) == {"order"}


# --- leakage -------------------------------------------------------------------------------------------------


# the refunds after_holdout_changes adds, as staging must hold them: (order, customer, kind, date, amount, linked)
LATE_REFUNDS = {
    "f2": ("F", "returned", pd.Timestamp("2025-03-10"), 60.0, True),  # of an order placed 02-15, before the cutoff
    "a5": ("A", "returned", pd.Timestamp("2025-03-20"), 100.0, True),
}


def assert_late_refunds_reached_staging(base, changed) -> None:
    """The late refunds are in staging, with their amount and date (and were not there before the changes): else
    "they do not leak into an earlier cutoff" would hold because they were never read at all."""
    refunds = changed.table("stg_shop__refunds")
    got = {r.order_id: (r.customer_id, r.refund_kind, r.refund_date, r.refund_amount, bool(r.is_linked))
           for r in refunds[refunds["order_id"].isin(list(LATE_REFUNDS))].itertuples()}
    assert got == LATE_REFUNDS
    assert not base.table("stg_shop__refunds")["order_id"].isin(list(LATE_REFUNDS)).any()
    f2 = changed.table("stg_shop__orders").set_index("order_id").loc["f2"]
    assert (f2["gross_amount"], f2["returned_amount"], f2["net_amount"], f2["returned_date"]) == (
        60.0, 60.0, 0.0, pd.Timestamp("2025-03-10"))


@pytest.mark.parametrize("cutoff", [TRAIN, HOLDOUT], ids=["train", "holdout"])
def test_rows_after_a_cutoff_do_not_change_its_features(warehouse, warehouse_after_changes, cutoff):
    assert_late_refunds_reached_staging(warehouse, warehouse_after_changes)
    for model in ("customer_features", "customer_lifecycle", "customer_sequences", "customer_events"):
        before = at(warehouse.table(model), cutoff)
        after = at(warehouse_after_changes.table(model), cutoff)
        pd.testing.assert_frame_equal(before, after, check_exact=False, rtol=1e-12, obj=f"{model} at {cutoff}")


def test_leakage_fixture_really_changed_the_future(warehouse, warehouse_after_changes):
    """The changes are visible after the holdout cutoff, so the test above has teeth."""
    before, after = warehouse.table("customer_labels"), warehouse_after_changes.table("customer_labels")
    pd.testing.assert_frame_equal(at(before, TRAIN), at(after, TRAIN))  # train labels read only up to 2025-03-01
    assert row(after, "A", HOLDOUT)["future_value"] == 400.0  # a5 is now 500.00 with a 100.00 refund
    assert row(after, "C", HOLDOUT)["future_orders"] == 1  # c3's two lines are one order
    assert row(after, "C", HOLDOUT)["future_value"] == 99.0
    assert not at(warehouse.table("customer_features"), SCORE).equals(
        at(warehouse_after_changes.table("customer_features"), SCORE))


def test_a_late_refund_counts_from_its_date_and_never_reaches_an_earlier_cutoff(warehouse, warehouse_after_changes):
    """f2 (60.00, placed 2025-02-15, inside the train horizon (01-30, 03-01]) is refunded on 2025-03-10, after the
    holdout cutoff: in staging, netted at the score cutoff, absent from the train label and the earlier features."""
    assert_late_refunds_reached_staging(warehouse, warehouse_after_changes)
    before, after = warehouse.table("customer_features"), warehouse_after_changes.table("customer_features")
    # at the score cutoff (03-31) F's spend is net of it: f1 40.00 + f2 60.00 - 60.00
    assert (row(before, "F", SCORE)["total_spend"], row(after, "F", SCORE)["total_spend"]) == (100.0, 40.0)
    assert row(after, "F", SCORE)["n_returns"] == row(before, "F", SCORE)["n_returns"] + 1
    # before its date nothing of F changed, and the train label still holds f2's full 60.00: the refund was issued
    # after the horizon (01-30, 03-01] ended
    for cutoff in (TRAIN, HOLDOUT):
        pd.testing.assert_series_equal(pd.Series(row(after, "F", cutoff)), pd.Series(row(before, "F", cutoff)),
                                       obj=f"F's features at {cutoff}")
    labels = warehouse_after_changes.table("customer_labels")
    assert row(labels, "F", TRAIN)["future_value"] == row(warehouse.table("customer_labels"), "F", TRAIN)[
        "future_value"] == 60.0


def test_a_rerun_over_reingested_data_equals_a_fresh_build(warehouse_rebuilt_after_changes, warehouse_after_changes):
    for model in ("int_customer_daily", "int_customers", "customer_features", "customer_labels",
                  "customer_lifecycle", "customer_sequences", "customer_events"):
        pd.testing.assert_frame_equal(
            warehouse_rebuilt_after_changes.table(model), warehouse_after_changes.table(model), obj=model)


# --- orders only ---------------------------------------------------------------------------------------------


def test_orders_only_shop_builds_with_null_interaction_features(warehouse_orders_only, warehouse):
    features = warehouse_orders_only.table("customer_features")
    assert sorted(features["customer_id"].unique()) == ["A", "C", "D", "E", "F"]  # B had only a profile and events
    assert features[INTERACTION_COLUMNS].isna().all().all()
    assert features[["region", "device", "channel"]].isna().all().all()
    a = row(features, "A", HOLDOUT)
    assert_values(a, {"n_orders": 3, "total_spend": 140.0, "tenure_days": 55, "active_days_90d": 2,
                      "btyd_frequency": 1, "btyd_monetary": 30.0})
    order_columns = ["n_orders", "total_spend", "median_order_value", "recency_days", "btyd_age_days"]
    base = warehouse.table("customer_features")
    base = base[base["customer_id"].isin(features["customer_id"].unique())].reset_index(drop=True)
    pd.testing.assert_frame_equal(features[order_columns], base[order_columns], check_dtype=False)

    sequences = warehouse_orders_only.table("customer_sequences")
    assert len(sequences) > 0 and sequences[["views", "searches", "carts", "engagements"]].isna().all().all()
    assert len(warehouse_orders_only.table("customer_labels")) > 0
    assert set(warehouse_orders_only.table("customer_lifecycle")["lifecycle_stage"]) <= {
        "potential", "new", "active", "loyal", "at_risk", "churned"}


def test_outliers_are_flagged_by_iqr_and_z_score(warehouse_after_changes):
    orders = warehouse_after_changes.table("stg_shop__orders").set_index("order_id")
    assert orders.loc["e4", "is_outlier_z"] and orders.loc["e4", "is_outlier_iqr"]  # 1,000,000.00 among tens
    assert not orders.drop(index="e4")["is_outlier_z"].any()
    assert not orders.loc[["a1", "a2", "e1", "g1"], "is_outlier_iqr"].any()
    assert orders.loc["e4", "net_amount"] == 1e6  # flagged, never dropped


# --- refunds without a sale line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse_with_loose_refunds(dbt_root):
    """Cancellation invoices of their own (Online Retail's C-invoices): no sale line shares their order id."""
    from tests.dbt.conftest import BASE_VARS, base_frames, build_warehouse, orders_frame

    frames = base_frames()
    frames["orders"] = pd.concat([frames["orders"], orders_frame([
        ("C100", "F", "2025-02-20 10:00:00", -25.0, -1, "cancelled", "z"),  # before the holdout cutoff
        ("C101", "A", "2025-03-15 10:00:00", -30.0, -1, "cancelled", "x"),  # inside the holdout's horizon
    ])], ignore_index=True)
    return build_warehouse(dbt_root, "loose_refunds", frames, BASE_VARS)


def test_a_refund_without_a_sale_line_nets_the_customer_from_its_date(warehouse, warehouse_with_loose_refunds):
    refunds = warehouse_with_loose_refunds.table("stg_shop__refunds").set_index("order_id")
    assert not refunds.loc["C100", "is_linked"] and refunds.loc["C100", "refund_amount"] == 25.0
    before = warehouse.table("customer_features")
    after = warehouse_with_loose_refunds.table("customer_features")
    # at the train cutoff (01-30) the refund of 02-20 has not happened: nothing changes
    assert row(after, "F", TRAIN)["total_spend"] == row(before, "F", TRAIN)["total_spend"]
    f = row(after, "F", HOLDOUT)
    assert f["total_spend"] == row(before, "F", HOLDOUT)["total_spend"] - 25.0
    assert f["n_returns"] == row(before, "F", HOLDOUT)["n_returns"] + 1 and f["n_orders"] == 2
    # A's value in (03-01, 03-31]: a5 (80.00) less the refund of 03-15 (30.00)
    assert row(at(warehouse_with_loose_refunds.table("customer_labels"), HOLDOUT), "A")["future_value"] == 50.0
