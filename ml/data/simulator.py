"""The built-in shop: a seeded simulator of customers, orders and behaviour events, with the truth behind them.

Purchasing follows BG/NBD's story (Fader, Hardie & Lee 2005) with Gamma-Gamma spend:
- each customer buys as a Poisson process of rate lambda (heterogeneous: Gamma, shifted by channel, region, device),
  modulated by seasonality (a year-end peak) and a Black-Friday-week promotion;
- each purchase is the customer's last with probability p (Beta-distributed): BG/NBD's drop-out coin. The coin of a
  purchase is tossed when the previous one happens (at sign-up for the first). The purchases are exactly BG/NBD's,
  but the customer's state is richer: one whose next purchase will be the last is *leaving*, and shows it;
- order values are Gamma(p_gg, rate nu) with nu ~ Gamma(q, gamma): spend is skewed and stable per customer;
  a few orders are cancelled, and each customer returns a share of orders (Beta), refunded 3-30 days later.
Behaviour carries signal about the future: customers browse at a rate that scales with their purchase rate; once a
customer is leaving, browsing fades (time constant FADE_DAYS) in the weeks *before* the last purchase and dies out
after it; a view and a cart precede every purchase, and reviews follow some.

Because the latent state is known, `truth` holds each customer's expected net value over (c, c + H] given their
state at the cutoff c (steady, leaving or gone; lambda, p, nu, return share). With L the seasonal purchase intensity
accumulated from c, the expected purchases are analytic: 1 - exp(-L) when leaving (one purchase left), and
(1 - e^-L) + [(1 - e^-L) - (e^-pL - e^-L) / (1 - p)] / p when steady (averaged over the coin this is BG/NBD's
(1 - e^-pL) / p), and so is the chance of at least one completed order (`p_return`). The value integrates that
purchase density over the horizon on a half-day grid, with the price drift, cancellations and the refunds issued by
c + H (the labels' definition), so sum(truth) matches the realised labels up to sampling noise. The truth does not
see the cart and view that precede a purchase by hours: a model can use them for purchases in the first two days
after the cutoff.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

REGIONS = {"north_america": 1.15, "europe": 1.0, "asia_pacific": 0.85, "latin_america": 0.7}
DEVICES = {"desktop": 1.1, "mobile": 0.95, "tablet": 0.85}
# channel -> (purchase-rate multiplier, dropout multiplier)
CHANNELS = {
    "organic": (1.2, 0.8),
    "email": (1.3, 0.7),
    "referral": (1.1, 0.8),
    "paid_search": (0.9, 1.1),
    "social": (0.7, 1.4),
    "affiliate": (0.8, 1.2),
}
DRIFT_CHANNEL = ("video_ads", 0.45, 1.8)  # the new channel that appears with channel-mix drift
DRIFT_CHANNEL_SHARE = 0.6  # share of sign-ups from the drift date that come through it
DRIFT_PRICE = 1.35  # price multiplier from the drift date
DRIFT_VIEWS_KEPT = 0.2  # share of views that remain from the drift date
CATEGORIES = ["apparel", "electronics", "home", "beauty", "sports", "books"]
EVENT_TYPES = ["view", "search", "add_to_cart", "purchase", "review", "like", "share"]
DRIFT_KINDS = ("channel_mix", "price", "engagement")
ORDER_STATUSES = ("completed", "returned", "cancelled")

FADE_DAYS = 21.0  # browsing decays with this time constant once a customer is leaving
REFUND_DELAY_DAYS = (3.0, 30.0)  # a refund is issued uniformly this many days after the order
TRUTH_STEPS_PER_DAY = 2
TRUTH_COLUMNS = ["customer_id", "cutoff_date", "alive", "leaving", "purchase_rate", "dropout_p",
                 "expected_order_value", "expected_orders", "expected_value", "p_return"]


@dataclass(frozen=True)
class ShopParams:
    """Population parameters. Defaults give a skewed shop where about half the customers never return."""

    r: float = 0.6  # lambda ~ Gamma(r, scale=1/alpha) per day
    alpha: float = 30.0
    a: float = 0.8  # p ~ Beta(a, b)
    b: float = 3.0
    p_gg: float = 4.0  # order value ~ Gamma(p_gg, rate nu)
    q: float = 3.0  # nu ~ Gamma(q, rate gamma)
    gamma: float = 15.0
    first_order_share: float = 0.75  # share of sign-ups who buy on the day they sign up
    views_per_purchase: float = 6.0  # browsing intensity relative to purchase rate
    base_views_per_day: float = 0.02
    return_rate_b: float = 14.0  # per-customer return probability ~ Beta(1, b)
    cancel_rate: float = 0.03
    acquisition_days: int | None = None  # every customer signs up in the shop's first N days (one cohort)
    wholesale_share: float = 0.0  # share of customers who buy wholesale: orders `wholesale_scale` times larger
    wholesale_scale: float = 30.0


@dataclass
class Shop:
    customers: pd.DataFrame
    orders: pd.DataFrame
    events: pd.DataFrame
    truth: pd.DataFrame

    def write(self, folder: str | Path, fmt: str = "parquet") -> Path:
        """Write the shop as a user's export would look: one file per table (+ truth.parquet)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("customers", "orders", "events"):
            frame = getattr(self, name)
            if fmt == "csv":  # Arrow's writer: ISO timestamps ("2025-01-31 10:11:12"), and fast on 20M rows
                table = pa.Table.from_pandas(frame, preserve_index=False)
                table = table.cast(pa.schema([
                    pa.field(f.name, pa.timestamp("s")) if pa.types.is_timestamp(f.type) else f for f in table.schema
                ]))
                pacsv.write_csv(table, folder / f"{name}.csv",
                                pacsv.WriteOptions(quoting_style="needed"))
            else:
                frame.to_parquet(folder / f"{name}.parquet", index=False)
        self.truth.to_parquet(folder / "truth.parquet", index=False)
        return folder


def seasonality(day: np.ndarray, start: date) -> np.ndarray:
    """Purchase-rate multiplier on a day offset from `start`: a year-end peak and a Black-Friday-week promotion."""
    doy = (pd.Timestamp(start).dayofyear + np.asarray(day, dtype=float)) % 365.25
    m = 1.0 + 0.25 * np.cos(2 * np.pi * (doy - 350) / 365.25)
    promo = (doy >= 327) & (doy < 334)
    return m * np.where(promo, 1.8, 1.0)


SEASON_MAX = 1.25 * 1.8


def simulate_shop(
    n_customers: int = 20_000,
    start: str | date = "2024-01-01",
    end: str | date = "2025-12-31",
    seed: int = 7,
    truth_cutoffs: list[str | date] | None = None,
    horizon_days: int = 90,
    drift_from: str | date | None = None,
    drift_kind: str | None = None,
    params: ShopParams = ShopParams(),
) -> Shop:
    """Simulate a shop from `start` to `end` (inclusive). Truth is written for each cutoff in `truth_cutoffs`."""
    start, end = _as_date(start), _as_date(end)
    if drift_kind is not None and drift_kind not in DRIFT_KINDS:
        raise ValueError(f"drift_kind must be one of {DRIFT_KINDS}, got {drift_kind!r}")
    rng = np.random.default_rng(seed)
    n_days = (end - start).days + 1
    drift_day = (_as_date(drift_from) - start).days if drift_from and drift_kind else None

    customers, latent = _customers(rng, n_customers, n_days, params, drift_day, drift_kind)
    orders, leave, death, order_rows = _orders(rng, latent, n_days, start, params, drift_day, drift_kind)
    latent["leave_day"], latent["death_day"] = leave, death
    events = _events(rng, latent, order_rows, n_days, start, drift_day, drift_kind)
    cutoffs = truth_cutoffs if truth_cutoffs is not None else [end - timedelta(days=horizon_days), end]
    truth = _truth(latent, [_as_date(c) for c in cutoffs], start, horizon_days, params, drift_day, drift_kind)

    customers = customers.assign(signup_ts=_timestamps(latent["signup_day"].to_numpy(), start))
    return Shop(customers=customers[["customer_id", "signup_ts", "region", "device", "channel"]],
                orders=orders, events=events, truth=truth)


def _as_date(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _timestamps(day: np.ndarray, start: date) -> np.ndarray:
    """Fractional days since `start` -> timestamps floored to the second."""
    seconds = (np.asarray(day) * 86_400).astype(np.int64)
    return (np.datetime64(start, "s") + seconds.astype("timedelta64[s]")).astype("datetime64[ns]")


def _order_ids(row: np.ndarray) -> pd.Series:
    digits = pc.utf8_lpad(pc.cast(pa.array(row), pa.string()), 9, "0")
    return pd.Series(pc.binary_join_element_wise("O", digits, ""), dtype="str")


def _strings(values: list[str], index: np.ndarray) -> pd.Series:
    """values[index] as a pandas string column, built in Arrow (a Python object per row costs 10x the memory)."""
    return pd.Series(pa.array(values).take(pa.array(index)), dtype="str")


def _customers(rng, n, n_days, params: ShopParams, drift_day, drift_kind):
    ids = np.array([f"C{i:07d}" for i in range(n)], dtype=object)
    # a growing shop: more sign-ups later; or one acquisition cohort, all in the first days
    if params.acquisition_days:
        signup = np.floor(min(params.acquisition_days, n_days) * rng.uniform(size=n)).astype(float)
    else:
        signup = np.floor(n_days * np.sqrt(rng.uniform(size=n))).astype(float)
    signup = np.minimum(signup, n_days - 1)
    region = rng.choice(list(REGIONS), size=n, p=[0.35, 0.3, 0.2, 0.15])
    device = rng.choice(list(DEVICES), size=n, p=[0.35, 0.55, 0.1])
    channel = rng.choice(list(CHANNELS), size=n, p=[0.3, 0.1, 0.1, 0.25, 0.15, 0.1])
    rate_mult = np.array([CHANNELS[c][0] for c in channel])
    drop_mult = np.array([CHANNELS[c][1] for c in channel])
    if drift_kind == "channel_mix" and drift_day is not None:
        late = (signup >= drift_day) & (rng.uniform(size=n) < DRIFT_CHANNEL_SHARE)
        channel = np.where(late, DRIFT_CHANNEL[0], channel)
        rate_mult = np.where(late, DRIFT_CHANNEL[1], rate_mult)
        drop_mult = np.where(late, DRIFT_CHANNEL[2], drop_mult)
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=n)
    lam *= rate_mult * np.array([REGIONS[r] for r in region]) * np.array([DEVICES[d] for d in device])
    p = np.clip(rng.beta(params.a, params.b, size=n) * drop_mult, 0.01, 0.99)
    nu = rng.gamma(params.q, 1.0 / params.gamma, size=n)
    if params.wholesale_share:  # nu is the rate of the order value's Gamma: a smaller rate, larger orders
        nu = np.where(rng.uniform(size=n) < params.wholesale_share, nu / params.wholesale_scale, nu)
    engagement = (params.base_views_per_day + params.views_per_purchase * lam) * rng.lognormal(0, 0.3, size=n)
    return_p = rng.beta(1.0, params.return_rate_b, size=n)
    customers = pd.DataFrame({"customer_id": ids, "region": region, "device": device, "channel": channel})
    latent = pd.DataFrame({"customer_id": ids, "signup_day": signup, "lam": lam, "p": p, "nu": nu,
                           "engagement": engagement, "return_p": return_p})
    return customers, latent


def _price_mult(day: np.ndarray, drift_day, drift_kind) -> np.ndarray:
    if drift_kind == "price" and drift_day is not None:
        return np.where(day >= drift_day, DRIFT_PRICE, 1.0)
    return np.ones_like(day, dtype=float)


def _orders(rng, latent, n_days, start, params: ShopParams, drift_day, drift_kind):
    """Thinned Poisson purchases with BG/NBD's drop-out coin, vectorised over the customers still buying.

    Returns the order rows in time order (returns are rows of their own), the day each customer started leaving
    (their next purchase is the last; inf: never), the day of their last purchase (inf: still buying at the end),
    and per row (customer index, fractional day, index into ORDER_STATUSES) for the behaviour that follows.
    """
    n = len(latent)
    lam, p = latent["lam"].to_numpy(), latent["p"].to_numpy()
    t = latent["signup_day"].to_numpy().copy()
    death = np.full(n, np.inf)
    leave = np.where(rng.uniform(size=n) < p, t, np.inf)  # the first purchase's coin, tossed at sign-up
    cust_idx, days = [], []

    def purchase(idx: np.ndarray, when: np.ndarray) -> None:
        cust_idx.append(idx)
        days.append(when)
        last = np.isfinite(leave[idx])
        death[idx[last]] = when[last]
        toss = ~last & (rng.uniform(size=idx.size) < p[idx])  # the coin of the next purchase
        leave[idx[toss]] = when[toss]

    # the acquisition order, on the sign-up day, for most customers
    idx = np.flatnonzero(rng.uniform(size=n) < params.first_order_share)
    t[idx] += rng.uniform(0, 1, size=idx.size)
    purchase(idx, t[idx].copy())
    active = np.flatnonzero(np.isinf(death))
    while active.size:
        t[active] += rng.exponential(1.0, size=active.size) / (lam[active] * SEASON_MAX)
        active = active[t[active] < n_days]
        accept = rng.uniform(size=active.size) < seasonality(t[active], start) / SEASON_MAX
        buyers = active[accept]
        purchase(buyers, t[buyers].copy())
        active = active[np.isinf(death[active])]
    cust_idx = np.concatenate(cust_idx)
    day = np.concatenate(days)
    m = cust_idx.size
    nu = latent["nu"].to_numpy()[cust_idx]
    amount = np.round(rng.gamma(params.p_gg, 1.0 / nu) * _price_mult(day, drift_day, drift_kind), 2)
    quantity = 1 + rng.poisson(np.clip(amount / 60.0, 0, 20))
    status = np.where(rng.uniform(size=m) < params.cancel_rate, 2, 0)  # index into ORDER_STATUSES
    category = rng.integers(len(CATEGORIES), size=m)
    # returns: a separate row, same order id, dated 3-30 days after the order, refunding the whole order
    ret = np.flatnonzero((status == 0) & (rng.uniform(size=m) < latent["return_p"].to_numpy()[cust_idx]))
    ret_day = day[ret] + rng.uniform(*REFUND_DELAY_DAYS, size=ret.size)
    ret, ret_day = ret[ret_day < n_days], ret_day[ret_day < n_days]
    # a cancelled order is a sale line and, ten minutes later, a cancellation line of the same amount, as shops
    # export them; a return refunds the whole order on its own date. Refund and cancellation lines are negative.
    cancelled = np.flatnonzero(status == 2)
    cancel_day = np.minimum(day[cancelled] + 10 / 1440, n_days - 1e-6)
    row = np.concatenate([np.arange(m), cancelled, ret])  # the order each row belongs to
    day = np.concatenate([day, cancel_day, ret_day])
    status = np.concatenate([status, np.full(cancelled.size, 2), np.ones(ret.size, dtype=status.dtype)])
    line = np.concatenate([np.zeros(m, dtype=np.int8), np.full(cancelled.size + ret.size, 1, dtype=np.int8)])
    row, day, status, line = (a[np.argsort(day, kind="stable")] for a in (row, day, status, line))
    exported = np.where(line == 0, 0, status)  # the sale line of a cancelled order is exported as completed
    orders = pd.DataFrame({
        "order_id": _order_ids(row),
        "customer_id": _strings(latent["customer_id"].tolist(), cust_idx[row]),
        "order_ts": _timestamps(day, start),
        "amount": np.where(line == 0, amount[row], -amount[row]), "quantity": quantity[row],
        "status": _strings(list(ORDER_STATUSES), exported),
        "category": _strings(CATEGORIES, category[row]),
    })
    # the behaviour that follows sees completed sales only (status 0); a cancelled order's sale line keeps code 2
    return orders, leave, death, (cust_idx[row], day, status)


def _events(rng, latent, order_rows, n_days, start, drift_day, drift_kind):
    """Browsing, steady then fading once leaving; a view and a cart before purchases; reviews after; likes, shares."""
    n = len(latent)
    signup = latent["signup_day"].to_numpy()
    leave = latent["leave_day"].to_numpy()
    eng = latent["engagement"].to_numpy()
    # steady browsing over [signup, leave)
    span = np.maximum(np.minimum(leave, n_days) - signup, 0)
    c = np.repeat(np.arange(n, dtype=np.int32), rng.poisson(eng * span))
    v_day = signup[c] + rng.uniform(size=c.size) * span[c]
    # fading browsing from `leave`: intensity eng * exp(-(t - leave) / FADE), sampled by inverse CDF
    fading = np.isfinite(leave) & (leave < n_days)
    left = np.where(fading, n_days - np.where(fading, leave, 0), 0.0)
    cf = np.repeat(np.arange(n, dtype=np.int32), rng.poisson(eng * FADE_DAYS * -np.expm1(-left / FADE_DAYS)))
    u = rng.uniform(size=cf.size)
    f_day = leave[cf] - FADE_DAYS * np.log1p(u * np.expm1(-left[cf] / FADE_DAYS))
    view_c = np.concatenate([c, cf])
    view_day = np.concatenate([v_day, f_day])
    if drift_kind == "engagement" and drift_day is not None:
        keep = (view_day < drift_day) | (rng.uniform(size=view_day.size) < DRIFT_VIEWS_KEPT)
        view_c, view_day = view_c[keep], view_day[keep]
    frames = [(view_c, view_day, "view")]
    # a third of views follow a search
    s = rng.uniform(size=view_c.size) < 0.33
    frames.append((view_c[s], np.maximum(view_day[s] - rng.uniform(0, 0.01, s.sum()), 0), "search"))
    # abandoned carts from browsing
    ab = rng.uniform(size=view_c.size) < 0.08
    frames.append((view_c[ab], view_day[ab], "add_to_cart"))
    # the purchase funnel: a product view, then the cart, within two days before the purchase
    cust_of_order, order_day, status = order_rows
    oc, od = cust_of_order[status == 0].astype(np.int32), order_day[status == 0]
    cart_day = np.maximum(od - rng.uniform(0.01, 2, oc.size), signup[oc])
    product_view = np.maximum(cart_day - rng.uniform(0, 0.05, oc.size), signup[oc])
    viewed = np.ones(oc.size, dtype=bool)
    if drift_kind == "engagement" and drift_day is not None:  # these views fade with the others
        viewed = (product_view < drift_day) | (rng.uniform(size=oc.size) < DRIFT_VIEWS_KEPT)
    frames.append((oc[viewed], product_view[viewed], "view"))
    frames.append((oc, cart_day, "add_to_cart"))
    frames.append((oc, od, "purchase"))
    rv = rng.uniform(size=oc.size) < 0.15
    frames.append((oc[rv], od[rv] + rng.uniform(3, 14, rv.sum()), "review"))
    lk = rng.uniform(size=view_c.size) < 0.05
    frames.append((view_c[lk], view_day[lk], "like"))
    sh = rng.uniform(size=view_c.size) < 0.01
    frames.append((view_c[sh], view_day[sh], "share"))
    cust = np.concatenate([f[0] for f in frames])
    day = np.concatenate([f[1] for f in frames])
    etype = np.concatenate([np.full(f[0].size, EVENT_TYPES.index(f[2]), dtype=np.int8) for f in frames])
    keep = np.flatnonzero(day < n_days)
    keep = keep[np.argsort(day[keep], kind="stable")]
    return pd.DataFrame({"customer_id": _strings(latent["customer_id"].tolist(), cust[keep]),
                         "event_ts": _timestamps(day[keep], start),
                         "event_type": _strings(EVENT_TYPES, etype[keep])})


def expected_purchases(intensity: np.ndarray, p: np.ndarray, leaving: np.ndarray) -> np.ndarray:
    """Expected purchases of a customer still buying, over a span of accumulated purchase intensity L.

    Leaving (the next purchase is the last): P(N >= 1) = 1 - e^-L. Steady: the first purchase is sure not to be the
    last, each later one is the last with probability p: sum_k P(N >= k) (1 - p)^max(k - 2, 0), N ~ Poisson(L).
    """
    once = -np.expm1(-intensity)
    steady = once + (once - (np.expm1(-p * intensity) - np.expm1(-intensity)) / (1 - p)) / p
    return np.where(leaving, once, steady)


def return_probability(intensity: np.ndarray, p: np.ndarray, leaving: np.ndarray, cancel: float) -> np.ndarray:
    """P(at least one completed order) over a span of accumulated purchase intensity L, each purchase cancelled
    with probability q = cancel. Leaving: (1 - e^-L)(1 - q). Steady: 1 - E[q^M], M = purchases made, which is
    (1 - q) [P(N >= 1) + q / (1 - r) (P(N >= 1) - e^-L (e^rL - 1) / r)] with r = q (1 - p)."""
    once = -np.expm1(-intensity)
    r = cancel * (1 - p)
    tail = np.where(r > 0, np.exp(-intensity) * np.expm1(r * intensity) / np.where(r > 0, r, 1.0),
                    intensity * np.exp(-intensity))
    steady = (1 - cancel) * (once + cancel / (1 - r) * (once - tail))
    return np.where(leaving, once * (1 - cancel), steady)


def _truth(latent, cutoffs, start, horizon_days, params: ShopParams, drift_day, drift_kind, block: int = 8192):
    """Per customer signed up by cutoff c, the latent state and what it implies for (c, c + H] (the oracle):
    alive (still buying), leaving (the next purchase is the last), purchase_rate (lambda per day), dropout_p (p),
    expected_order_value (net value of an order placed at c), expected_orders (completed), expected_value (net of
    cancellations and of the refunds issued by c + H) and p_return (P(at least one completed order))."""
    rows = []
    lam, p, nu = latent["lam"].to_numpy(), latent["p"].to_numpy(), latent["nu"].to_numpy()
    return_p = latent["return_p"].to_numpy()
    net_share = 1 - params.cancel_rate  # cancelled orders carry no value
    mean_gross = params.p_gg / nu
    lo, hi = REFUND_DELAY_DAYS
    for cutoff in cutoffs:
        c = float((cutoff - start).days + 1)  # the end of the cutoff day
        seen = latent["signup_day"].to_numpy() < c
        buying = latent["death_day"].to_numpy() >= c
        leaving = buying & (latent["leave_day"].to_numpy() < c)
        # a half-day grid over the horizon: shared seasonal intensity, price, and the chance a refund is in by c + H
        k = horizon_days * TRUTH_STEPS_PER_DAY
        mids = c + (np.arange(k) + 0.5) / TRUTH_STEPS_PER_DAY
        season = np.concatenate([[0.0], np.cumsum(seasonality(mids, start)) / TRUTH_STEPS_PER_DAY])
        price = _price_mult(mids, drift_day, drift_kind)
        refunded = np.clip((c + horizon_days - mids - lo) / (hi - lo), 0.0, 1.0)
        n_purchases, gross, refunds, p_return = (np.zeros(len(latent)) for _ in range(4))
        for b0 in range(0, len(latent), block):
            sl = slice(b0, b0 + block)
            idx = np.flatnonzero(buying[sl]) + b0
            if not idx.size:
                continue
            m = expected_purchases(lam[idx, None] * season[None, :], p[idx, None], leaving[idx, None])
            density = np.diff(m, axis=1)  # expected purchases in each grid step
            n_purchases[idx] = m[:, -1]
            p_return[idx] = return_probability(lam[idx] * season[-1], p[idx], leaving[idx], params.cancel_rate)
            gross[idx] = density @ price
            refunds[idx] = density @ (price * refunded)
        value = mean_gross * net_share * (gross - return_p * refunds)
        price_now = _price_mult(np.full(len(latent), c), drift_day, drift_kind)
        rows.append(pd.DataFrame({
            "customer_id": latent["customer_id"], "cutoff_date": pd.Timestamp(cutoff),
            "alive": buying, "leaving": leaving, "purchase_rate": lam, "dropout_p": p,
            "expected_order_value": mean_gross * (1 - return_p) * price_now,
            "expected_orders": n_purchases * net_share, "expected_value": value, "p_return": p_return,
        })[seen])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=TRUTH_COLUMNS)
