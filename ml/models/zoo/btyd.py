"""The BTYD baseline: BG/NBD for purchases and being alive, Gamma-Gamma for spend (lifetimes 0.11.3).

Inputs are the dbt features per distinct order day (btyd_frequency, btyd_recency_days, btyd_age_days, btyd_monetary).
lifetimes was chosen over pymc-marketing by measurement (shared/REFERENCE.md): a BG/NBD fit on 23.6k customers
takes 0.25 s with lifetimes and 26 s with pymc-marketing's MAP (PyTensor compiles first).
Customers without an order have no BTYD history (btyd_age_days is NULL): the model predicts 0 for them.

Return probability (no purchase within t otherwise): P(alive) x (1 - ((alpha + T) / (alpha + T + t)) ^ (r + x)),
the chance that an alive customer, with the posterior Gamma(r + x, alpha + T) purchase rate, buys within t.
Quantiles: the value of a returning customer as a lognormal with the model's conditional mean and the spread of
spend between repeat customers (sigma of log monetary value), so BTYD can be served like the others.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import ConvergenceError

from ml.models import ziln
from ml.models.interface import ClvModel, FitContext, raw_predictions
from ml.models.preprocess import Preprocessor
from ml.data.windows import Window

PENALIZER = 0.001  # lifetimes' L2 on the parameters: keeps the fit stable on small shops


def btyd_inputs(features: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """(rows with an order history, their frequency / recency / T / monetary in days). Use df["T"], never df.T."""
    has = features["btyd_age_days"].notna().to_numpy()
    f = features.loc[has]
    frame = pd.DataFrame({
        "frequency": f["btyd_frequency"].to_numpy(dtype=float, na_value=0.0),
        "recency": f["btyd_recency_days"].to_numpy(dtype=float, na_value=0.0),
        "T": f["btyd_age_days"].to_numpy(dtype=float),
        "monetary": f["btyd_monetary"].to_numpy(dtype=float, na_value=0.0),
    })
    frame["recency"] = np.where(frame["frequency"] > 0, np.minimum(frame["recency"], frame["T"]), 0.0)
    return has, frame


class BtydModel(ClvModel):
    name = "btyd"
    description = "BG/NBD purchases x Gamma-Gamma spend (lifetimes)"
    baseline = True

    def __init__(self, prep: Preprocessor, bgf: BetaGeoFitter, ggf: GammaGammaFitter, info: dict | None = None):
        super().__init__(prep, info)
        self.bgf, self.ggf = bgf, ggf

    @classmethod
    def fit(cls, window: Window, ctx: FitContext) -> "BtydModel":
        return cls.fit_histories(window, ctx.horizon_days)

    @classmethod
    def fit_histories(cls, window: Window, horizon_days: int) -> "BtydModel":
        """Fit on the customers' histories at the window's cutoff (no labels are used)."""
        _, d = btyd_inputs(window.features)
        if len(d) < 10 or (d["frequency"] > 0).sum() < 10:
            raise ValueError(f"BTYD needs at least 10 repeat customers at {window.cutoff}, got {(d['frequency'] > 0).sum()}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bgf = converged("BG/NBD", lambda tol: BetaGeoFitter(penalizer_coef=PENALIZER).fit(
                d["frequency"], d["recency"], d["T"], tol=tol))
            repeat = d[(d["frequency"] > 0) & (d["monetary"] > 0)]
            ggf = converged("Gamma-Gamma", lambda tol: GammaGammaFitter(penalizer_coef=PENALIZER).fit(
                repeat["frequency"], repeat["monetary"], tol=tol))
        sigma = float(np.clip(np.log(repeat["monetary"]).std(), ziln.SIGMA_MIN, ziln.SIGMA_MAX))
        info = {"name": cls.name, "train_cutoff": str(window.cutoff), "n_train": int(len(d)), "horizon_days": horizon_days,
                "sigma": sigma,
                "bg_nbd": {k: float(v) for k, v in bgf.params_.items()},
                "gamma_gamma": {k: float(v) for k, v in ggf.params_.items()}}
        prep = Preprocessor.fit(window.features, window.sequences)
        return cls(prep, bgf, ggf, info)

    def components(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per row: expected purchase days in the horizon, P(alive), P(return), expected spend per purchase day."""
        t = float(self.info["horizon_days"])
        has, d = btyd_inputs(features)
        out = pd.DataFrame({"expected_purchases": 0.0, "p_alive": 0.0, "p_return": 0.0, "expected_spend": 0.0},
                           index=range(len(features)))
        if len(d):
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                purchases = self.bgf.conditional_expected_number_of_purchases_up_to_time(
                    t, d["frequency"], d["recency"], d["T"])
                alive = self.bgf.conditional_probability_alive(d["frequency"], d["recency"], d["T"])
                spend = self.ggf.conditional_expected_average_profit(d["frequency"], d["monetary"])
            r, alpha = self.bgf.params_["r"], self.bgf.params_["alpha"]
            buys = 1 - ((alpha + d["T"]) / (alpha + d["T"] + t)) ** (r + d["frequency"])
            rows = np.flatnonzero(has)
            out.loc[rows, "expected_purchases"] = np.nan_to_num(np.maximum(np.asarray(purchases, float), 0))
            out.loc[rows, "p_alive"] = np.clip(np.nan_to_num(np.asarray(alive, float)), 0, 1)
            out.loc[rows, "p_return"] = np.clip(np.nan_to_num(np.asarray(alive * buys, float)), 0, 1)
            out.loc[rows, "expected_spend"] = np.nan_to_num(np.maximum(np.asarray(spend, float), 0))
        return out

    def predict_raw(self, features: pd.DataFrame, sequences: np.ndarray) -> pd.DataFrame:
        c = self.components(features)
        value = (c["expected_purchases"] * c["expected_spend"]).to_numpy()
        p = c["p_return"].to_numpy()
        sigma = float(self.info.get("sigma", 1.0))
        mu = np.log(np.maximum(value, 1e-9) / np.maximum(p, 1e-9)) - 0.5 * sigma**2  # E[value | return] = value / p
        q10, q50, q90 = ziln.mixture_quantiles(p, mu, sigma)
        return pd.DataFrame({"predicted_value": value, "p_return": p, "value_p10": q10, "value_p50": q50,
                             "value_p90": q90})

    @classmethod
    def restore(cls, folder: Path | None, prep: Preprocessor, info: dict, spec: dict, load=None) -> "BtydModel":
        bgf, ggf = BetaGeoFitter(penalizer_coef=PENALIZER), GammaGammaFitter(penalizer_coef=PENALIZER)
        bgf.params_ = pd.Series(info["bg_nbd"])  # the fitted parameters are all there is to these models
        ggf.params_ = pd.Series(info["gamma_gamma"])
        return cls(prep, bgf, ggf, info)


TOLERANCES = (1e-7, 1e-5, 1e-4)  # lifetimes' default first


def converged(what: str, fit, tolerances: tuple[float, ...] = TOLERANCES):
    """`fit(tol)` at each of `tolerances` until one converges. BFGS can stop on "precision loss" at lifetimes'
    default 1e-7 where a looser one converges: BG/NBD on real shops (shared/REFERENCE.md), Gamma-Gamma on 84k repeat
    customers of the 1M benchmark shop (1e-5 did). lifetimes prints each failed optimisation to stdout: kept out of
    the run's output. A fit that fails at every tolerance raises."""
    for tol in tolerances:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return fit(tol)
        except ConvergenceError:
            last = tol
    raise ValueError(f"{what} did not converge (tolerance down to {last})")


FEATURES = ["btyd_p_alive", "btyd_expected_purchases", "btyd_expected_spend", "btyd_expected_value",
            "btyd_p_return"]


def btyd_features(btyd: BtydModel, features: pd.DataFrame) -> pd.DataFrame:
    """What BG/NBD + Gamma-Gamma know about each row, as features for the learners: P(alive), expected purchase
    days and spend over the horizon, their product, and P(return). Computed from the row's own history at its
    cutoff, so a customer who aged since training is described as the older customer they are. NaN where the
    row has no order history (the learners see "unknown", not zero)."""
    # positions, not labels: a slice of a window keeps its index, the components may not
    c = {k: np.asarray(v, dtype=float) for k, v in btyd.components(features).items()}
    has = features["btyd_age_days"].notna().to_numpy()
    out = pd.DataFrame({"btyd_p_alive": c["p_alive"], "btyd_expected_purchases": c["expected_purchases"],
                        "btyd_expected_spend": c["expected_spend"],
                        "btyd_expected_value": c["expected_purchases"] * c["expected_spend"],
                        "btyd_p_return": c["p_return"]}, index=features.index)
    out.loc[~has] = np.nan
    return out


def with_btyd_features(btyd: BtydModel | None, features: pd.DataFrame) -> pd.DataFrame:
    if btyd is None:
        return features
    return pd.concat([features.drop(columns=[c for c in FEATURES if c in features]),
                      btyd_features(btyd, features)], axis=1)


def btyd_from_info(info: dict | None) -> BtydModel | None:
    """The BTYD part a learner keeps (its fitted parameters) back as a model; None when it has none."""
    if not info:
        return None
    return BtydModel.restore(None, Preprocessor(), info, {})


def btyd_total(window: Window, horizon_days: int) -> tuple[float | None, str]:
    """What BG/NBD + Gamma-Gamma fitted on the histories at `window`'s cutoff (features only, no labels) forecast
    the population as a whole to spend over the horizon, ageing included: the anchor of a learner's total, which
    was trained one horizon earlier on younger customers. (total or None, note)."""
    try:
        btyd = BtydModel.fit_histories(window, horizon_days)
    except ValueError as exc:
        return None, f"no BTYD anchor at {window.cutoff}: {exc}"
    total = float(np.nansum(btyd.predict_raw(window.features, window.sequences)["predicted_value"]))
    if total <= 0:
        return None, f"no BTYD anchor at {window.cutoff}: a total of 0"
    return total, f"total anchored to BG/NBD + Gamma-Gamma fitted at {window.cutoff}"


def total_anchor(model: ClvModel, window: Window, anchor: tuple[float | None, str]) -> tuple[float, str]:
    """The factor that brings `model`'s total on `window` to the anchor (btyd_total). (factor, note)."""
    total, note = anchor
    own = float(np.nansum(raw_predictions(model, window.features, window.sequences, window.events)[
        "predicted_value"]))
    if total is None or own <= 0:
        return 1.0, note if total is None else f"no BTYD anchor at {window.cutoff}: the model predicts 0"
    return float(np.clip(total / own, 0.25, 4.0)), note
