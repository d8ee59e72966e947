"""How CLV predictions are scored: exactly the definitions of shared/METRICS.md (the ZILN paper's).

`y` is each customer's actual value in the horizon (0 when they did not return), `p` the prediction.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score


def gain_curve(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Cumulative share of total value captured, customers sorted by prediction descending."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    order = np.argsort(-p, kind="stable")
    return np.cumsum(y[order]) / y.sum()


def gini(y: np.ndarray, p: np.ndarray) -> float:
    return float(2 * gain_curve(y, p).mean() - 1)


def normalized_gini(y: np.ndarray, p: np.ndarray) -> float:
    """gini(p) / gini(y): 1.0 is the perfect ranking."""
    return gini(y, p) / gini(y, y)


def decile_table(y: np.ndarray, p: np.ndarray, n_buckets: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean prediction and mean actual per bucket of prediction (bucket 0 = highest predictions)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    buckets = np.array_split(np.argsort(-p, kind="stable"), n_buckets)
    return np.array([p[b].mean() for b in buckets]), np.array([y[b].mean() for b in buckets])


def decile_mape(y: np.ndarray, p: np.ndarray) -> float:
    """Mean over 10 prediction buckets of |mean(p) - mean(y)| / mean(y). Not a per-customer MAPE."""
    pred, actual = decile_table(y, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(pred - actual) / actual
    return float(np.mean(np.where(actual > 0, err, np.where(pred > 0, np.inf, 0.0))))


def value_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    y, p = np.asarray(y, float), np.asarray(p, float)
    top = np.argsort(-p, kind="stable")[: max(1, len(p) // 10)]
    return {
        "normalized_gini": normalized_gini(y, p),
        "spearman": float(spearmanr(p, y).statistic),
        "decile_mape": decile_mape(y, p),
        "total_error": float(p.sum() / y.sum() - 1),
        "rmse": float(np.sqrt(np.mean((p - y) ** 2))),
        "mae": float(np.mean(np.abs(p - y))),
        "rmse_log1p": float(np.sqrt(np.mean((np.log1p(p) - np.log1p(y)) ** 2))),
        "top_decile_lift": float(y[top].mean() / y.mean()),
    }


def return_metrics(returned: np.ndarray, p_return: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    returned = np.asarray(returned, bool)
    p_return = np.asarray(p_return, float)
    pred = p_return >= threshold
    tp = float((pred & returned).sum())
    recall = tp / max(returned.sum(), 1)
    precision = tp / max(pred.sum(), 1)
    return {
        "return_auc": float(roc_auc_score(returned, p_return)),
        "return_pr_auc": float(average_precision_score(returned, p_return)),
        "return_brier": float(np.mean((p_return - returned) ** 2)),
        "return_accuracy": float((pred == returned).mean()),
        "return_recall": float(recall),
        "return_f1": float(2 * precision * recall / max(precision + recall, 1e-12)),
    }


def top_value_metrics(y: np.ndarray, p: np.ndarray, share: float = 0.2) -> dict[str, float]:
    """Accuracy / recall / F1 of "top 20 % value": the predicted top share against the actual top share."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    k = max(1, int(np.ceil(len(y) * share)))
    actual = np.zeros(len(y), bool)
    actual[np.argsort(-y, kind="stable")[:k]] = True
    pred = np.zeros(len(y), bool)
    pred[np.argsort(-p, kind="stable")[:k]] = True
    tp = float((pred & actual).sum())
    recall, precision = tp / k, tp / k  # both sets hold k customers
    return {
        "top20_accuracy": float((pred == actual).mean()),
        "top20_recall": recall,
        "top20_f1": float(2 * precision * recall / max(precision + recall, 1e-12)),
    }


def evaluate(y: np.ndarray, p: np.ndarray, p_return: np.ndarray | None = None) -> dict[str, float]:
    """All metrics of one model on one out-of-time window (return metrics when a return probability is given)."""
    p = np.maximum(np.nan_to_num(np.asarray(p, float), nan=0.0), 0.0)
    out = value_metrics(y, p)
    out.update(top_value_metrics(y, p))
    if p_return is not None and not np.isnan(np.asarray(p_return, float)).any():
        out.update(return_metrics(np.asarray(y) > 0, p_return))
    return out


def display(value: float, digits: int = 4) -> str:
    """A metric as text for a table: decile MAPE is infinite when a prediction bucket's actual mean is 0."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if np.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{digits}f}"
