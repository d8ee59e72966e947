"""Why a customer got their prediction, in words a marketer can read; and which features matter overall.

Features come in groups a marketer thinks in ("recent orders", "spend", "site activity", ...). Per customer, each
group in turn is set to a typical customer's values (the training population's, ml.models.preprocess.Preprocessor.typical;
the weekly activity to the training mean week by week); the change in expected value is that group's effect. The
largest effects, with their sign, become the reasons. This works for every kind of model in the zoo (it only calls
`predict`), and costs one prediction per group: about 14 for any number of customers.

Global importance is the permutation kind: shuffle one group across customers of a labelled window and measure how
much the normalized Gini drops.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.evaluation.metrics import normalized_gini
from ml.models.interface import ClvModel
from ml.models.zoo.btyd import FEATURES as DERIVED
from ml.models.zoo.deep import reused_encodings

SEQUENCE_FEATURE = "weekly_activity"

# group -> its features; a reason shows the group's feature furthest from a typical customer's
GROUPS: dict[str, list[str]] = {
    "recent_orders": ["orders_90d", "orders_30d", "orders_7d", "spend_30d", "spend_90d", "active_days_90d"],
    "order_history": ["n_orders", "orders_365d", "total_quantity", "avg_quantity", "btyd_frequency"],
    "spend": ["avg_order_value", "total_spend", "spend_365d", "median_order_value", "max_order_value",
              "std_order_value", "btyd_monetary"],
    "recency": ["recency_days", "btyd_recency_days"],
    "tenure": ["tenure_days", "days_since_first_order", "btyd_age_days"],
    "rhythm": ["mean_interpurchase_days", "std_interpurchase_days"],
    "returns": ["return_rate", "n_returns"],
    "site_activity": ["events_30d", "events_90d", "views_30d", "views_total", "searches_30d", "days_since_last_event"],
    "carts": ["carts_30d", "carts_total", "cart_to_purchase"],
    "social": ["reviews_total", "likes_total", "shares_total"],
    "habits": ["weekend_order_share", "order_hour_mean"],
    "profile": ["channel", "region", "device"],
}
SEQUENCE_LABEL = "recent weekly activity"
# feature -> what a marketer calls it, for the feature shown with a reason
LABELS = {
    "orders_90d": "orders in the last 90 days", "orders_30d": "orders in the last 30 days",
    "orders_7d": "orders in the last 7 days", "spend_30d": "spend in the last 30 days",
    "spend_90d": "spend in the last 90 days", "active_days_90d": "active days in the last 90 days",
    "n_orders": "orders so far", "orders_365d": "orders in the last year", "total_quantity": "items bought",
    "avg_quantity": "items per order", "btyd_frequency": "repeat purchase days",
    "avg_order_value": "average order value", "total_spend": "total spend", "spend_365d": "spend in the last year",
    "median_order_value": "typical order value", "max_order_value": "largest order",
    "std_order_value": "spread of order values", "btyd_monetary": "average repeat order value",
    "recency_days": "days since the last order", "btyd_recency_days": "days between first and last order",
    "tenure_days": "days as a customer", "days_since_first_order": "days since the first order",
    "btyd_age_days": "days since the first order", "mean_interpurchase_days": "usual days between orders",
    "std_interpurchase_days": "irregularity of orders", "return_rate": "share of orders returned",
    "n_returns": "returned orders", "events_30d": "site activity in the last 30 days",
    "events_90d": "site activity in the last 90 days", "views_30d": "views in the last 30 days",
    "views_total": "product views", "searches_30d": "searches in the last 30 days",
    "days_since_last_event": "days since the last site visit", "carts_30d": "add-to-carts in the last 30 days",
    "carts_total": "add-to-carts", "cart_to_purchase": "orders per add-to-cart", "reviews_total": "reviews written",
    "likes_total": "likes", "shares_total": "shares", "weekend_order_share": "share of weekend orders",
    "order_hour_mean": "usual hour of ordering", "channel": "acquisition channel", "region": "region",
    "device": "device",
}


@dataclass(frozen=True)
class Reason:
    feature: str  # the group (or weekly_activity)
    value: float | None  # the customer's value of the group's headline feature (None: sequence, missing, a category)
    effect: float  # change in expected value this group causes, vs a typical customer
    text: str

    def to_dict(self) -> dict:
        """As JSON has it: a non-finite effect or value is null (dataclasses.asdict costs ~10x more at 1M rows)."""
        return {"feature": self.feature, "value": _finite(self.value), "effect": _finite(self.effect),
                "text": self.text}


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def reasons_json(rows: list[list[Reason]]) -> list[str]:
    """Each row's reasons as one compact JSON list (what /predict serves and customer_scores.reason_details keeps)."""
    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    return [dumps([r.to_dict() for r in row]) for row in rows]


def feature_groups(model: ClvModel) -> dict[str, list[str]]:
    """The groups with the features this model uses; a feature outside every group is a group of its own."""
    # the model's inputs: what a learner derives from them (BG/NBD + Gamma-Gamma outputs) moves with them
    used = [f for f in list(model.prep.numeric) + list(model.prep.categorical) if f not in DERIVED]
    groups = {g: [f for f in feats if f in used] for g, feats in GROUPS.items()}
    groups = {g: f for g, f in groups.items() if f}
    grouped = {f for feats in groups.values() for f in feats}
    groups.update({f: [f] for f in used if f not in grouped})
    return groups


def group_names(model: ClvModel, groups: dict[str, list[str]]) -> list[str]:
    """The groups a reason can name: the feature groups, and the weekly activity when the model reads it."""
    return list(groups) + ([SEQUENCE_FEATURE] if model.prep.seq_mean and model.prep.seq_channels else [])


def explain(model: ClvModel, features: pd.DataFrame, sequences: np.ndarray, top_k: int = 3,
            events: np.ndarray | None = None, base: np.ndarray | None = None) -> list[list[Reason]]:
    """The `top_k` reasons per row of `features`, largest absolute effect first. The event streams (`events`, for
    the member that reads them) go in as they are: they are no group of their own. `base`: the rows' expected
    values, when the caller has them already (one model run fewer)."""
    groups, names, effects = group_effects(model, features, sequences, events, base)
    return reasons_from_effects(model, features, sequences, groups, names, effects, top_k)


def group_effects(model: ClvModel, features: pd.DataFrame, sequences: np.ndarray, events: np.ndarray | None = None,
                  base: np.ndarray | None = None, reuse: bool = True
                  ) -> tuple[dict[str, list[str]], list[str], np.ndarray]:
    """(groups, names, effects): effects[i, j] is row i's expected value minus that with group names[j] set to a
    typical customer's values; one model run per group, a deep network's sequence encoding made once (`reuse`:
    False, once per run)."""
    features = features.reset_index(drop=True)
    groups = feature_groups(model)
    names = group_names(model, groups)
    effects = np.zeros((len(features), len(names)))
    with reused_encodings(reuse):
        base = _value(model, features, sequences, events) if base is None else np.asarray(base, dtype=float)
        for j, name in enumerate(names):
            f, s = features, sequences
            if name == SEQUENCE_FEATURE:
                s = np.broadcast_to(np.asarray(model.prep.seq_mean, dtype=sequences.dtype), sequences.shape)
            else:
                f = features.assign(**{c: model.prep.typical(c) for c in groups[name]})
            effects[:, j] = base - _value(model, f, s, events)
    return groups, names, effects


def reasons_from_effects(model: ClvModel, features: pd.DataFrame, sequences: np.ndarray,
                         groups: dict[str, list[str]], names: list[str], effects: np.ndarray,
                         top_k: int) -> list[list[Reason]]:
    """The reasons of each row from its effects (effects[i, j]: row i's expected value minus that with group
    names[j] set to typical): largest absolute effect first, the group's most unusual feature shown, in words.
    serving/batch.py computes the effects with one model run per batch and shares this step."""
    features = features.reset_index(drop=True)
    shown = _most_unusual(model, features, sequences, groups)
    top = np.argsort(-np.abs(effects), axis=1, kind="stable")[:, :top_k]
    columns = {c: features[c].to_numpy(dtype=object) for c in {f for fs in groups.values() for f in fs}
               if c in features}
    out = []
    for i, js in enumerate(top):
        row = []
        for j in js:
            name, effect = names[j], float(effects[i, j])
            feature = None if name == SEQUENCE_FEATURE else shown[name][i]
            value = None if feature is None else _plain(columns[feature][i])
            number = float(value) if isinstance(value, (int, float)) else None
            row.append(Reason(name, number, effect, _text(name, feature, value, effect)))
        out.append(row)
    return out


def _most_unusual(model: ClvModel, features: pd.DataFrame, sequences: np.ndarray,
                  groups: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Per group and row, the feature furthest from the typical customer (|standardised value|, the network's
    input space where 0 is typical); categories count only when they differ from the most frequent one."""
    numeric = model.prep.transform_static(model.inputs(features))[0][:, : len(model.prep.numeric)]
    out = {}
    for name, cols in groups.items():
        score = np.column_stack([
            np.abs(numeric[:, model.prep.numeric.index(c)]) if c in model.prep.numeric
            else (_text_column(features, c) != model.prep.modes.get(c, "")).astype(float) * 0.5
            for c in cols])
        out[name] = np.asarray(cols, dtype=object)[np.argmax(score, axis=1)]
    return out


def _text_column(features: pd.DataFrame, column: str) -> np.ndarray:
    if column not in features:
        return np.full(len(features), "", dtype=object)
    return features[column].astype("string").fillna("").to_numpy(dtype=object)


def permutation_importance(model: ClvModel, features: pd.DataFrame, sequences: np.ndarray, y: np.ndarray,
                           seed: int = 0, events: np.ndarray | None = None) -> pd.Series:
    """Drop in normalized Gini when a group is shuffled across customers (bigger = matters more)."""
    rng = np.random.default_rng(seed)
    features = features.reset_index(drop=True)
    order = rng.permutation(len(features))
    drops = {}
    with reused_encodings():  # the weekly activity is shuffled last, as an array of its own
        base = normalized_gini(y, _value(model, features, sequences, events))
        for name, cols in feature_groups(model).items():
            shuffled = features.assign(**{c: features[c].to_numpy()[order] for c in cols})
            drops[name] = base - normalized_gini(y, _value(model, shuffled, sequences, events))
        if model.prep.seq_channels:
            drops[SEQUENCE_FEATURE] = base - normalized_gini(y, _value(model, features, sequences[order], events))
    return pd.Series(drops).sort_values(ascending=False)


def _value(model: ClvModel, features: pd.DataFrame, sequences: np.ndarray, events=None) -> np.ndarray:
    return model.predict(features, sequences, events)["predicted_value"].to_numpy(dtype=float)


def _plain(value):
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def _text(group: str, feature: str | None, value, effect: float) -> str:
    direction = "raises" if effect > 0 else "lowers"
    if group == SEQUENCE_FEATURE:
        subject = f"Their {SEQUENCE_LABEL}"
    else:
        label = LABELS.get(feature, feature.replace("_", " "))
        if value is None:
            subject = f"No {label} on record"
        elif isinstance(value, str):
            subject = f"{label.capitalize()}: {value}"
        else:
            shown = f"{value:,.0f}" if abs(value) >= 10 or float(value).is_integer() else f"{value:,.2f}"
            subject = f"{label.capitalize()}: {shown}"
    return f"{subject} {direction} the expected value by {abs(effect):,.2f}"
