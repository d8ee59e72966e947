"""The backtest's pictures (matplotlib, Agg, PNG): gain curves, decile chart, return-probability calibration,
feature importance. Each function returns PNG bytes; `markdown_image` embeds them in Dagster metadata."""
from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ml.evaluation.metrics import decile_table, gain_curve  # noqa: E402

DPI = 80


def gain_chart(y: np.ndarray, curves: dict[str, np.ndarray]) -> bytes:
    """Share of the horizon's value captured by targeting the top x % by each model's prediction."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    x = np.arange(1, len(y) + 1) / len(y)
    ax.plot(x, gain_curve(y, y), color="black", lw=1, ls="--", label="perfect (actual values)")
    for name, p in curves.items():
        ax.plot(x, gain_curve(y, p), lw=1.6, label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="random")
    ax.set(xlabel="share of customers targeted (highest prediction first)", ylabel="share of horizon value captured",
           title="Gain curves on the backtest", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def decile_chart(y: np.ndarray, p: np.ndarray, name: str) -> bytes:
    """Mean predicted vs mean actual value per decile of prediction (decile 1 = highest predictions)."""
    pred, actual = decile_table(y, p)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    idx = np.arange(1, len(pred) + 1)
    ax.bar(idx - 0.2, pred, width=0.4, label="mean predicted")
    ax.bar(idx + 0.2, actual, width=0.4, label="mean actual")
    ax.set(xlabel="decile of predicted value (1 = highest)", ylabel="value per customer over the horizon",
           title=f"Deciles: {name}", xticks=idx)
    ax.legend(fontsize=8)
    return _png(fig)


def calibration_chart(returned: np.ndarray, curves: dict[str, np.ndarray], bins: int = 10) -> bytes:
    """Reliability of the return probability: observed return share per bin of predicted probability."""
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="perfectly calibrated")
    returned = np.asarray(returned, float)
    for name, p in curves.items():
        p = np.asarray(p, float)
        edges = np.quantile(p, np.linspace(0, 1, bins + 1))
        which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
        frame = pd.DataFrame({"bin": which, "p": p, "r": returned}).groupby("bin").mean()
        ax.plot(frame["p"], frame["r"], marker="o", ms=3, lw=1.4, label=name)
    ax.set(xlabel="predicted return probability", ylabel="observed return share", xlim=(0, 1), ylim=(0, 1),
           title="Return probability calibration")
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def importance_chart(importance: pd.Series, title: str) -> bytes:
    """Horizontal bars, largest first."""
    s = importance.sort_values()
    fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(s) + 1.2))
    ax.barh(s.index, s.to_numpy())
    ax.set(xlabel="drop in normalized Gini when shuffled", title=title)
    return _png(fig)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that shows the PNG inline (a data URI: the Dagster UI renders it in asset metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()
