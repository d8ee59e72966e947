"""The built-in shop: heterogeneous, skewed, seasonal, with behaviour that tells the future, drift on demand,
and a truth table whose expected values match what customers then do."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml.data.simulator import DRIFT_CHANNEL, DRIFT_PRICE, simulate_shop

CUTOFFS = ["2025-06-01", "2025-09-01"]
H = 90


@pytest.fixture(scope="module")
def shop():
    return simulate_shop(n_customers=30_000, start="2024-01-01", end="2025-12-31", seed=3,
                         truth_cutoffs=CUTOFFS + ["2025-12-31"], horizon_days=H)


def sales(shop) -> pd.DataFrame:
    """Every sale line, those of orders cancelled later included."""
    return shop.orders[shop.orders["status"] == "completed"]


def completed(shop) -> pd.DataFrame:
    """The sale lines of orders that were not cancelled: what the truth calls completed orders."""
    cancelled = shop.orders.loc[shop.orders["status"] == "cancelled", "order_id"]
    return sales(shop)[~sales(shop)["order_id"].isin(cancelled)]


def realised(shop, cutoff: str) -> pd.DataFrame:
    """What each customer did in (c, c + H]: completed orders and their value net of refunds issued by c + H
    (the definition of dbt's customer_labels)."""
    c = pd.Timestamp(cutoff)
    end = c + pd.Timedelta(days=H)
    day = shop.orders["order_ts"].dt.normalize()
    cancelled = shop.orders.loc[shop.orders["status"] == "cancelled", "order_id"]  # no order at all
    orders = shop.orders[(shop.orders["status"] == "completed") & (day > c) & (day <= end)
                         & ~shop.orders["order_id"].isin(cancelled)]
    refunds = shop.orders[(shop.orders["status"] == "returned") & (day <= end)]
    refunds = -refunds.set_index("order_id")["amount"]  # refund lines are negative
    net = (orders["amount"] - orders["order_id"].map(refunds).fillna(0.0)).clip(lower=0)
    out = orders.assign(net=net, n=1).groupby("customer_id")[["n", "net"]].sum()
    truth = shop.truth[shop.truth["cutoff_date"] == c].set_index("customer_id")
    return truth.join(out).fillna({"n": 0, "net": 0.0})


def test_the_same_seed_gives_the_same_shop_and_another_seed_another(shop):
    a = simulate_shop(n_customers=1500, seed=21)
    b = simulate_shop(n_customers=1500, seed=21)
    for name in ("customers", "orders", "events", "truth"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)
    c = simulate_shop(n_customers=1500, seed=22)
    assert not a.orders["amount"].equals(c.orders["amount"])
    assert len(a.events) != len(c.events)


def test_customers_differ_by_channel_region_and_device(shop):
    truth = shop.truth[shop.truth["cutoff_date"] == pd.Timestamp("2025-12-31")]
    rate = truth["purchase_rate"]
    assert rate.std() / rate.mean() > 1.0  # Gamma heterogeneity, not one rate for all
    customers = shop.customers.set_index("customer_id")
    orders_per_customer = completed(shop).groupby("customer_id").size().reindex(customers.index, fill_value=0)
    by_channel = orders_per_customer.groupby(customers["channel"]).mean()
    assert by_channel["email"] > 1.4 * by_channel["social"], by_channel
    by_region = truth.set_index("customer_id")["purchase_rate"].groupby(customers["region"]).mean()
    assert by_region["north_america"] > 1.3 * by_region["latin_america"], by_region
    by_device = truth.set_index("customer_id")["purchase_rate"].groupby(customers["device"]).mean()
    assert by_device["desktop"] > 1.1 * by_device["tablet"], by_device


def test_value_is_skewed_and_about_half_never_return(shop):
    per_customer = completed(shop).groupby("customer_id")["amount"].agg(["size", "sum"])
    one_timers = (per_customer["size"] == 1).mean()
    assert 0.35 < one_timers < 0.6, one_timers
    value = per_customer["sum"].reindex(shop.customers["customer_id"], fill_value=0.0).sort_values(ascending=False)
    top_decile = value.iloc[: len(value) // 10].sum() / value.sum()
    assert top_decile > 0.4, top_decile
    amounts = completed(shop)["amount"]
    assert amounts.mean() > 1.2 * amounts.median()  # right-skewed order values


def test_seasonality_and_the_promotion_week_are_visible(shop):
    per_day = completed(shop)["order_ts"].dt.normalize().value_counts().sort_index()
    promo = per_day["2024-11-22":"2024-11-28"].mean()
    around = pd.concat([per_day["2024-11-08":"2024-11-21"], per_day["2024-11-29":"2024-12-12"]]).mean()
    assert promo > 1.4 * around, (promo, around)
    # the year-end peak, free of the shop's growth: orders per customer-day of the customers still buying at the
    # end (a customer who survives buys at a rate (1 - p) lambda x season: the same seasonal profile)
    end = shop.truth[(shop.truth["cutoff_date"] == pd.Timestamp("2025-12-31")) & shop.truth["alive"]]
    signup = shop.customers.set_index("customer_id").loc[end["customer_id"], "signup_ts"]
    orders = completed(shop)[completed(shop)["customer_id"].isin(end["customer_id"])]

    def rate(first: str, last: str) -> float:
        lo, hi = pd.Timestamp(first), pd.Timestamp(last) + pd.Timedelta(days=1)
        exposure = ((hi - signup.clip(lower=lo)).dt.total_seconds().clip(lower=0) / 86_400).sum()
        return orders["order_ts"].between(lo, hi, inclusive="left").sum() / exposure

    december, june = rate("2024-12-01", "2024-12-31"), rate("2025-06-01", "2025-06-30")
    assert december > 1.3 * june, (december, june)  # the model's peak/trough is 1.25 / 0.75


def test_returns_and_cancellations(shop):
    orders = shop.orders
    shares = orders["status"].value_counts(normalize=True)
    assert 0.02 < shares["cancelled"] < 0.04 and 0.03 < shares["returned"] < 0.12, shares
    returns = orders[orders["status"] == "returned"].merge(
        completed(shop), on="order_id", suffixes=("", "_order"), validate="one_to_one")
    assert len(returns) == (orders["status"] == "returned").sum()  # every return refunds a completed order
    delay = (returns["order_ts"] - returns["order_ts_order"]).dt.total_seconds() / 86_400
    assert delay.between(3 - 1e-3, 30).all()
    # a refund line is negative: the order's whole amount, back to the same customer
    assert (returns["amount"] == -returns["amount_order"]).all() and (returns["customer_id"] == returns[
        "customer_id_order"]).all()
    # a cancellation is a negative line of its order's amount, ten minutes after the sale line
    cancels = orders[orders["status"] == "cancelled"].merge(
        sales(shop), on="order_id", suffixes=("", "_order"), validate="one_to_one")
    assert len(cancels) == (orders["status"] == "cancelled").sum()
    assert (cancels["amount"] == -cancels["amount_order"]).all()
    assert ((cancels["order_ts"] - cancels["order_ts_order"]).dt.total_seconds().between(0, 601)).all()


def test_engagement_fades_before_a_customer_leaves(shop):
    """Customers whose next purchase is their last ('leaving' in the truth) browse less than they used to,
    while steady customers browse as before: the signal comes before the last purchase, not only after it."""
    cutoff = pd.Timestamp(CUTOFFS[1])
    truth = shop.truth[shop.truth["cutoff_date"] == cutoff].set_index("customer_id")
    signup = shop.customers.set_index("customer_id")["signup_ts"]
    truth = truth[signup.reindex(truth.index) < cutoff - pd.Timedelta(days=120)]
    views = shop.events[shop.events["event_type"] == "view"]
    age = (cutoff - views["event_ts"]).dt.days
    recent = views[age.between(0, 27)].groupby("customer_id").size().reindex(truth.index, fill_value=0)
    before = views[age.between(56, 83)].groupby("customer_id").size().reindex(truth.index, fill_value=0)
    ratio = {state: recent[g.index].sum() / before[g.index].sum()
             for state, g in truth.groupby(np.where(~truth["alive"], "gone", np.where(truth["leaving"], "leaving",
                                                                                     "steady")))}
    assert 0.9 < ratio["steady"] < 1.15, ratio
    assert ratio["leaving"] < 0.85 * ratio["steady"], ratio
    assert ratio["gone"] < 0.5, ratio


def test_recent_behaviour_predicts_the_future(shop):
    """Browsing and carts in the last four weeks rank who buys next better than the order count does."""
    cutoff = CUTOFFS[1]
    future = realised(shop, cutoff)
    c = pd.Timestamp(cutoff)
    history = completed(shop)[completed(shop)["order_ts"].dt.normalize() <= c]
    prior = history.groupby("customer_id").size().reindex(future.index, fill_value=0)
    events = shop.events[(shop.events["event_ts"].dt.normalize() <= c)
                         & (shop.events["event_ts"] > c - pd.Timedelta(days=28))
                         & (shop.events["event_type"] != "purchase")]
    recent = events.groupby("customer_id").size().reindex(future.index, fill_value=0)
    buyers = prior > 0
    returned = future["n"][buyers] > 0
    auc_recent = roc_auc_score(returned, recent[buyers])
    assert auc_recent > 0.75 and auc_recent > roc_auc_score(returned, prior[buyers]) + 0.1
    # every completed order is preceded by a cart of the same customer within two days
    carts = shop.events[shop.events["event_type"] == "add_to_cart"][["customer_id", "event_ts"]]
    sample = completed(shop).sample(2000, random_state=0)
    pairs = sample.merge(carts, on="customer_id")
    lead = pairs["order_ts"] - pairs["event_ts"]
    preceded = pairs[(lead >= pd.Timedelta(0)) & (lead <= pd.Timedelta(days=2))]["order_id"].nunique()
    assert preceded == len(sample)


def test_the_truth_covers_every_signed_up_customer_with_latent_parameters(shop):
    for cutoff in CUTOFFS:
        truth = shop.truth[shop.truth["cutoff_date"] == pd.Timestamp(cutoff)]
        signed_up = shop.customers[shop.customers["signup_ts"].dt.normalize() <= pd.Timestamp(cutoff)]
        assert set(truth["customer_id"]) == set(signed_up["customer_id"])
        assert truth[["purchase_rate", "dropout_p", "expected_order_value"]].gt(0).all().all()
        assert (truth.loc[~truth["alive"], "expected_value"] == 0).all()
        assert not (truth["leaving"] & ~truth["alive"]).any()


@pytest.mark.parametrize("cutoff", CUTOFFS)
def test_the_truth_is_calibrated_against_what_customers_then_do(shop, cutoff):
    future = realised(shop, cutoff)
    # tolerances ~3.5 sd of these ratios over seeds at this size (value 1.1%, orders 0.9%)
    assert future["net"].sum() / future["expected_value"].sum() == pytest.approx(1.0, abs=0.04)
    assert future["n"].sum() / future["expected_orders"].sum() == pytest.approx(1.0, abs=0.03)
    assert (future["n"] > 0).mean() == pytest.approx(future["p_return"].mean(), abs=0.01)
    # per latent state, so that the steady and leaving formulas are each right (not two errors cancelling)
    for state in (future[future["alive"] & future["leaving"]], future[future["alive"] & ~future["leaving"]]):
        assert state["n"].sum() / state["expected_orders"].sum() == pytest.approx(1.0, abs=0.06)
        assert (state["n"] > 0).mean() == pytest.approx(state["p_return"].mean(), abs=0.03)
    # per decile of the truth: high truth means high realised value, in proportion
    decile = pd.qcut(future["expected_value"].rank(method="first"), 10, labels=False)
    by_decile = future.groupby(decile)[["expected_value", "net"]].mean()
    top = by_decile.iloc[-3:]
    assert (top["net"] / top["expected_value"]).between(0.85, 1.15).all(), by_decile
    assert by_decile["net"].is_monotonic_increasing or by_decile["net"].iloc[-1] > 5 * by_decile["net"].iloc[4]


def drift_figures(shop) -> dict[str, float]:
    """The three things each kind of drift moves, after 2025-07-01 vs before."""
    drift = pd.Timestamp("2025-07-01")
    late = shop.customers["signup_ts"] >= drift
    orders = completed(shop)
    after = orders["order_ts"] >= drift
    before = ~after & (orders["order_ts"] >= drift - pd.Timedelta(days=182))
    views = shop.events[shop.events["event_type"] == "view"]["event_ts"]

    def views_per_order(lo, hi):
        return views.between(lo, hi).sum() / orders["order_ts"].between(lo, hi).sum()

    return {
        "new_channel_share": float((shop.customers.loc[late, "channel"] == DRIFT_CHANNEL[0]).mean()),
        "new_channel_before": float((shop.customers.loc[~late, "channel"] == DRIFT_CHANNEL[0]).mean()),
        "price_ratio": orders.loc[after, "amount"].mean() / orders.loc[before, "amount"].mean(),
        "views_ratio": views_per_order(drift, drift + pd.Timedelta(days=61))
        / views_per_order(drift - pd.Timedelta(days=61), drift),
    }


@pytest.fixture(scope="module")
def drifted():
    return {kind: drift_figures(simulate_shop(n_customers=8000, seed=4, drift_from="2025-07-01", drift_kind=kind))
            for kind in ("channel_mix", "price", "engagement")}


@pytest.mark.parametrize("kind", ["channel_mix", "price", "engagement"])
def test_each_kind_of_drift_is_visible_in_the_data_from_its_month(drifted, kind):
    f = drifted[kind]
    assert f["new_channel_before"] == 0
    moved = {
        "channel_mix": 0.5 < f["new_channel_share"] < 0.7,
        "price": abs(f["price_ratio"] - DRIFT_PRICE) < 0.1,
        "engagement": f["views_ratio"] < 0.5,
    }
    assert moved[kind], f
    # and only its own figure moves
    untouched = {
        "channel_mix": f["new_channel_share"] == 0,
        "price": abs(f["price_ratio"] - 1) < 0.1,
        "engagement": 0.8 < f["views_ratio"] < 1.25,
    }
    assert all(ok for other, ok in untouched.items() if other != kind), f


def test_an_unknown_drift_kind_is_refused():
    with pytest.raises(ValueError, match="drift_kind must be one of"):
        simulate_shop(n_customers=10, drift_from="2025-01-01", drift_kind="weather")
