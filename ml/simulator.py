"""The built-in shop: a seeded simulator of customers, orders and behaviour events, with the truth behind them.

Purchasing follows BG/NBD's story (Fader, Hardie & Lee 2005) with Gamma-Gamma spend:
- each customer buys as a Poisson process of rate lambda (heterogeneous: Gamma, shifted by channel, region, device),
  modulated by seasonality and promotions;
- after every purchase the customer drops out with probability p (Beta-distributed);
- order values are Gamma(p_gg, nu) with nu ~ Gamma(q, gamma): spend is skewed and stable per customer.
Behaviour carries signal about the future: alive customers browse at a steady rate that scales with their purchase
rate, carts precede purchases, and after a customer's silent drop-out their browsing fades out over a few weeks.

Because the latent state is known, the simulator writes each customer's true expected value over the horizon after
a cutoff (`truth`): for an alive customer with cumulative purchase intensity L over the window,
E[orders] = (1 - exp(-p L)) / p, and E[value] = E[orders] x mean net order value.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

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
CATEGORIES = ["apparel", "electronics", "home", "beauty", "sports", "books"]
EVENT_TYPES = ["view", "search", "add_to_cart", "purchase", "review", "like", "share"]
DRIFT_KINDS = ("channel_mix", "price", "engagement")

FADE_DAYS = 21.0  # browsing decays with this time constant after a customer silently drops out


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
            if fmt == "csv":
                frame.to_csv(folder / f"{name}.csv", index=False)
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


def _intensity(lam: np.ndarray, t0: np.ndarray, t1: np.ndarray, start: date, steps: int = 64) -> np.ndarray:
    """Integral of lambda x seasonality over [t0, t1] per customer (midpoint rule)."""
    width = np.maximum(t1 - t0, 0.0)
    grid = (np.arange(steps) + 0.5) / steps
    days = t0[:, None] + width[:, None] * grid[None, :]
    return lam * width * seasonality(days, start).mean(axis=1)


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
    orders, death = _orders(rng, customers, latent, n_days, start, params, drift_day, drift_kind)
    latent["death_day"] = death
    events = _events(rng, latent, orders, n_days, params, drift_day, drift_kind)
    cutoffs = truth_cutoffs if truth_cutoffs is not None else [end - timedelta(days=horizon_days), end]
    truth = _truth(latent, customers, orders, [_as_date(c) for c in cutoffs], start, horizon_days, params,
                   drift_day, drift_kind)

    customers = customers.assign(signup_ts=pd.Timestamp(start) + pd.to_timedelta(latent["signup_day"], unit="D"))
    orders = _stamp(orders, "day", "order_ts", start)
    events = _stamp(events, "day", "event_ts", start)
    return Shop(
        customers=customers[["customer_id", "signup_ts", "region", "device", "channel"]],
        orders=orders[["order_id", "customer_id", "order_ts", "amount", "quantity", "status", "category"]],
        events=events[["customer_id", "event_ts", "event_type"]],
        truth=truth,
    )


def _as_date(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _stamp(frame: pd.DataFrame, day_col: str, ts_col: str, start: date) -> pd.DataFrame:
    ts = pd.Timestamp(start) + pd.to_timedelta(frame[day_col].to_numpy(), unit="D")
    return frame.assign(**{ts_col: ts.floor("s")}).drop(columns=[day_col]).sort_values(ts_col, kind="stable")


def _customers(rng, n, n_days, params: ShopParams, drift_day, drift_kind):
    ids = np.array([f"C{i:07d}" for i in range(n)], dtype=object)
    # a growing shop: more sign-ups later
    signup = np.floor(n_days * np.sqrt(rng.uniform(size=n))).astype(float)
    signup = np.minimum(signup, n_days - 1)
    region = rng.choice(list(REGIONS), size=n, p=[0.35, 0.3, 0.2, 0.15])
    device = rng.choice(list(DEVICES), size=n, p=[0.35, 0.55, 0.1])
    channel = rng.choice(list(CHANNELS), size=n, p=[0.3, 0.1, 0.1, 0.25, 0.15, 0.1])
    rate_mult = np.array([CHANNELS[c][0] for c in channel])
    drop_mult = np.array([CHANNELS[c][1] for c in channel])
    if drift_kind == "channel_mix" and drift_day is not None:
        late = (signup >= drift_day) & (rng.uniform(size=n) < 0.6)
        channel = np.where(late, DRIFT_CHANNEL[0], channel)
        rate_mult = np.where(late, DRIFT_CHANNEL[1], rate_mult)
        drop_mult = np.where(late, DRIFT_CHANNEL[2], drop_mult)
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=n)
    lam *= rate_mult * np.array([REGIONS[r] for r in region]) * np.array([DEVICES[d] for d in device])
    p = np.clip(rng.beta(params.a, params.b, size=n) * drop_mult, 0.01, 0.99)
    nu = rng.gamma(params.q, 1.0 / params.gamma, size=n)
    engagement = (params.base_views_per_day + params.views_per_purchase * lam) * rng.lognormal(0, 0.3, size=n)
    return_p = rng.beta(1.0, params.return_rate_b, size=n)
    customers = pd.DataFrame({"customer_id": ids, "region": region, "device": device, "channel": channel})
    latent = pd.DataFrame({"customer_id": ids, "signup_day": signup, "lam": lam, "p": p, "nu": nu,
                           "engagement": engagement, "return_p": return_p})
    return customers, latent


def _price_mult(day: np.ndarray, drift_day, drift_kind) -> np.ndarray:
    if drift_kind == "price" and drift_day is not None:
        return np.where(day >= drift_day, 1.35, 1.0)
    return np.ones_like(day, dtype=float)


def _orders(rng, customers, latent, n_days, start, params: ShopParams, drift_day, drift_kind):
    """Thinned Poisson purchases with a dropout coin after each; vectorised over the customers still alive."""
    n = len(latent)
    lam, p = latent["lam"].to_numpy(), latent["p"].to_numpy()
    t = latent["signup_day"].to_numpy().copy()
    death = np.full(n, np.inf)
    cust_idx, days = [], []
    # acquisition order on the sign-up day for most customers
    first = rng.uniform(size=n) < params.first_order_share
    idx = np.flatnonzero(first)
    cust_idx.append(idx)
    days.append(t[idx] + rng.uniform(0, 1, size=idx.size))
    dies = rng.uniform(size=idx.size) < p[idx]
    death[idx[dies]] = days[-1][dies]
    active = np.flatnonzero(np.isinf(death))
    while active.size:
        t[active] += rng.exponential(1.0, size=active.size) / (lam[active] * SEASON_MAX)
        active = active[t[active] < n_days]
        accept = rng.uniform(size=active.size) < seasonality(t[active], start) / SEASON_MAX
        buyers = active[accept]
        cust_idx.append(buyers)
        days.append(t[buyers].copy())
        dies = rng.uniform(size=buyers.size) < p[buyers]
        death[buyers[dies]] = t[buyers[dies]]
        active = active[np.isinf(death[active])]
    cust_idx = np.concatenate(cust_idx)
    day = np.concatenate(days)
    m = cust_idx.size
    nu = latent["nu"].to_numpy()[cust_idx]
    amount = rng.gamma(params.p_gg, 1.0 / nu) * _price_mult(day, drift_day, drift_kind)
    quantity = 1 + rng.poisson(np.clip(amount / 60.0, 0, 20))
    status = np.where(rng.uniform(size=m) < params.cancel_rate, "cancelled", "completed")
    orders = pd.DataFrame({
        "order_id": [f"O{i:09d}" for i in range(m)],
        "customer_id": latent["customer_id"].to_numpy()[cust_idx],
        "day": day, "amount": np.round(amount, 2), "quantity": quantity, "status": status,
        "category": rng.choice(CATEGORIES, size=m),
        "_cust": cust_idx,
    })
    # returns: a separate row, same order id, dated 3-30 days after the order, refunding the whole order
    ret = (status == "completed") & (rng.uniform(size=m) < latent["return_p"].to_numpy()[cust_idx])
    returns = orders[ret].copy()
    returns["day"] = returns["day"] + rng.uniform(3, 30, size=len(returns))
    returns["status"] = "returned"
    returns = returns[returns["day"] < n_days]
    orders = pd.concat([orders, returns], ignore_index=True)
    return orders, death


def _events(rng, latent, orders, n_days, params: ShopParams, drift_day, drift_kind):
    """Browsing while alive, fading after drop-out; carts before purchases; reviews after; likes and shares."""
    n = len(latent)
    signup = latent["signup_day"].to_numpy()
    death = latent["death_day"].to_numpy()
    eng = latent["engagement"].to_numpy()
    alive_end = np.minimum(death, n_days)
    # steady browsing over [signup, alive_end)
    span = np.maximum(alive_end - signup, 0)
    n_views = rng.poisson(eng * span)
    c = np.repeat(np.arange(n), n_views)
    v_day = signup[c] + rng.uniform(size=c.size) * span[c]
    # fading browsing after drop-out: intensity eng * exp(-(t - death) / FADE)
    dead = np.isfinite(death) & (death < n_days)
    tail = np.where(dead, FADE_DAYS * (1 - np.exp(-(n_days - np.where(dead, death, 0)) / FADE_DAYS)), 0.0)
    n_fade = rng.poisson(eng * tail)
    cf = np.repeat(np.arange(n), n_fade)
    u = rng.uniform(size=cf.size)
    horizon = n_days - death[cf]
    f_day = death[cf] - FADE_DAYS * np.log(1 - u * (1 - np.exp(-horizon / FADE_DAYS)))
    view_c = np.concatenate([c, cf])
    view_day = np.concatenate([v_day, f_day])
    if drift_kind == "engagement" and drift_day is not None:
        keep = (view_day < drift_day) | (rng.uniform(size=view_day.size) < 0.3)
        view_c, view_day = view_c[keep], view_day[keep]
    frames = [(view_c, view_day, "view")]
    # a third of views follow a search
    s = rng.uniform(size=view_c.size) < 0.33
    frames.append((view_c[s], np.maximum(view_day[s] - rng.uniform(0, 0.01, s.sum()), 0), "search"))
    # abandoned carts from browsing
    ab = rng.uniform(size=view_c.size) < 0.08
    frames.append((view_c[ab], view_day[ab], "add_to_cart"))
    bought = orders[orders["status"] == "completed"]
    oc, od = bought["_cust"].to_numpy(), bought["day"].to_numpy()
    frames.append((oc, np.maximum(od - rng.uniform(0.01, 2, oc.size), signup[oc]), "add_to_cart"))
    frames.append((oc, od, "purchase"))
    rv = rng.uniform(size=oc.size) < 0.15
    frames.append((oc[rv], od[rv] + rng.uniform(3, 14, rv.sum()), "review"))
    lk = rng.uniform(size=view_c.size) < 0.05
    frames.append((view_c[lk], view_day[lk], "like"))
    sh = rng.uniform(size=view_c.size) < 0.01
    frames.append((view_c[sh], view_day[sh], "share"))
    cust = np.concatenate([f[0] for f in frames])
    day = np.concatenate([f[1] for f in frames])
    etype = np.concatenate([np.full(f[0].size, f[2], dtype=object) for f in frames])
    keep = day < n_days
    return pd.DataFrame({"customer_id": latent["customer_id"].to_numpy()[cust[keep]], "day": day[keep],
                         "event_type": etype[keep]})


def _truth(latent, customers, orders, cutoffs, start, horizon_days, params: ShopParams, drift_day, drift_kind):
    """Each customer's expected net value over (c, c + H] given the latent state at c (the oracle)."""
    rows = []
    lam, p, nu = latent["lam"].to_numpy(), latent["p"].to_numpy(), latent["nu"].to_numpy()
    mean_order = params.p_gg / nu * (1 - params.cancel_rate) * (1 - latent["return_p"].to_numpy())
    for cutoff in cutoffs:
        c = float((cutoff - start).days + 1)  # the end of the cutoff day
        seen = latent["signup_day"].to_numpy() < c
        alive = latent["death_day"].to_numpy() >= c
        t0 = np.full(len(latent), c)
        lam_int = _intensity(lam, t0, t0 + horizon_days, start)
        exp_orders = np.where(alive, -np.expm1(-p * lam_int) / p, 0.0)
        price = _price_mult(np.full(len(latent), c + horizon_days / 2), drift_day, drift_kind)
        rows.append(pd.DataFrame({
            "customer_id": latent["customer_id"], "cutoff_date": pd.Timestamp(cutoff),
            "alive": alive, "purchase_rate": lam, "dropout_p": p, "expected_order_value": mean_order * price,
            "expected_orders": exp_orders, "expected_value": exp_orders * mean_order * price,
        })[seen])
    return pd.concat(rows, ignore_index=True)
