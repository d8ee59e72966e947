"""One leaderboard: every model of the zoo scored on the same out-of-time rows with the metrics of METRICS.md,
beside the simulator's truth (the oracle) where it exists."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ml.evaluation.metrics import display, evaluate

ORACLE = "oracle"
# the columns of the table a user reads first (every metric stays in the CSV and the registry)
SHOWN = ["normalized_gini", "spearman", "decile_mape", "total_error", "return_auc", "return_pr_auc", "return_brier",
         "top_decile_lift", "rmse", "mae", "return_f1", "top20_f1"]


def leaderboard(y: np.ndarray, predictions: dict[str, pd.DataFrame], oracle: pd.DataFrame | None = None,
                facts: dict[str, dict] | None = None) -> pd.DataFrame:
    """One row per model (best normalized Gini first, the oracle last): metrics + `facts` (e.g. seconds)."""
    rows = []
    for name, pred in predictions.items():
        metrics = evaluate(y, pred["predicted_value"].to_numpy(dtype=float), pred["p_return"].to_numpy(dtype=float))
        rows.append({"model": name, **(facts or {}).get(name, {}), **metrics})
    board = pd.DataFrame(rows).sort_values("normalized_gini", ascending=False, kind="stable")
    if oracle is not None:
        truth = evaluate(y, oracle["predicted_value"].to_numpy(float), oracle["p_return"].to_numpy(float))
        board = pd.concat([board, pd.DataFrame([{"model": ORACLE, **truth}])], ignore_index=True)
    return board.reset_index(drop=True)


def ranked(board: pd.DataFrame, eligible, tolerance: float = 0.0, by: str = "normalized_gini") -> list[str]:
    """The eligible models, best first on `by`. Differences within `tolerance` are noise, not merit: among the
    models that close to the best, the one with the best-calibrated deciles (lowest decile MAPE) leads; the rest
    follow on `by` (a model without a value for `by` comes last)."""
    rows = board[board["model"].isin(list(eligible))].copy()
    if rows.empty:
        raise ValueError("no servable model was trained: nothing to choose from")
    rows["_score"] = rows[by].fillna(rows["normalized_gini"] - 1.0) if by != "normalized_gini" else rows[by]
    best = rows["_score"].max()
    close = rows[rows["_score"] >= best - tolerance].sort_values(["decile_mape", "_score"], ascending=[True, False],
                                                                  kind="stable")
    rest = rows[~rows["model"].isin(close["model"])].sort_values("_score", ascending=False, kind="stable")
    return [str(m) for m in pd.concat([close, rest])["model"]]


def choose(board: pd.DataFrame, eligible, tolerance: float = 0.0, by: str = "normalized_gini") -> str:
    """The best eligible model (see `ranked`)."""
    return ranked(board, eligible, tolerance, by)[0]


def to_markdown(board: pd.DataFrame, columns: list[str] | None = None) -> str:
    """The table as markdown; infinite decile MAPE shows as ∞, missing metrics as blanks."""
    cols = ["model"] + [c for c in (columns or SHOWN) if c in board]
    text = board[cols].copy()
    for c in cols[1:]:
        text[c] = [display(v) if isinstance(v, (float, int, np.floating)) and not isinstance(v, bool) else
                   ("" if v is None else str(v)) for v in board[c]]
    return text.to_markdown(index=False)


def to_records(board: pd.DataFrame) -> list[dict]:
    """Rows for JSON: infinities as the string "inf", NaN as null."""
    def plain(v):
        if isinstance(v, (float, np.floating)):
            v = float(v)
            if math.isnan(v):
                return None
            if math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return round(v, 5)
        if isinstance(v, np.integer):
            return int(v)
        return v
    return [{k: plain(v) for k, v in row.items()} for row in board.to_dict(orient="records")]
