"""Performance once labels mature: a served model's past predictions against what customers then did.

Drift says the inputs moved; performance says the predictions got worse. A model can decay with stable inputs
(behaviour changed, not the population), so both are watched. Evidently's regression and classification presets
give the report a user can open; the platform's own metrics (METRICS.md) give the figures the decision uses.
"""
from __future__ import annotations

import os

os.environ.setdefault("DO_NOT_TRACK", "1")  # before evidently is imported: no telemetry

from dataclasses import dataclass  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from evidently import BinaryClassification, DataDefinition, Dataset, Regression, Report  # noqa: E402
from evidently.presets import ClassificationPreset, RegressionPreset  # noqa: E402

from ml.monitoring.drift import add_to_workspace  # noqa: E402
from ml.evaluation.metrics import evaluate  # noqa: E402


@dataclass(frozen=True)
class PerformanceResult:
    metrics: dict[str, float]  # METRICS.md figures of the matured predictions
    n_customers: int
    html_path: str | None


def matured_performance(scores: pd.DataFrame, labels: pd.DataFrame, html_path: str | os.PathLike | None = None,
                        workspace: str | os.PathLike | None = None, project_name: str = "clv-performance",
                        timestamp: datetime | None = None) -> PerformanceResult:
    """Join past `scores` (customer_id, predicted_value, p_return) to matured `labels` (customer_id, future_value,
    returned) and measure them. Customers scored but absent from the labels are left out."""
    frame = scores[["customer_id", "predicted_value", "p_return"]].merge(
        labels[["customer_id", "future_value", "returned"]], on="customer_id", how="inner")
    if frame.empty:
        raise ValueError("no scored customer has a matured label")
    y = frame["future_value"].to_numpy(dtype=float)
    metrics = evaluate(y, frame["predicted_value"].to_numpy(dtype=float), frame["p_return"].to_numpy(dtype=float))
    data = pd.DataFrame({
        "future_value": y,
        "predicted_value": frame["predicted_value"].to_numpy(dtype=float),
        "returned": frame["returned"].astype(int).to_numpy(),
        "p_return": frame["p_return"].to_numpy(dtype=float),
    })
    definition = DataDefinition(
        numerical_columns=["future_value", "predicted_value", "p_return"],
        categorical_columns=["returned"],
        regression=[Regression(target="future_value", prediction="predicted_value")],
        classification=[BinaryClassification(target="returned", prediction_probas="p_return", pos_label=1)],
    )
    snapshot = Report([RegressionPreset(), ClassificationPreset()]).run(Dataset.from_pandas(data, definition), None,
                                                                       timestamp=timestamp)
    if html_path is not None:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))
    if workspace is not None:
        add_to_workspace(snapshot, workspace, project_name, performance_panels())
    clean = {k: (float(v) if np.isfinite(v) else None) for k, v in metrics.items()}
    return PerformanceResult(clean, len(frame), str(html_path) if html_path else None)


def performance_panels() -> list:
    """The performance project's dashboard, one point per judged cutoff: return AUC, mean error (the total's bias
    per customer) and mean absolute error of the matured predictions."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    return [
        line_plot_panel(title="Return AUC (matured)", size="half",
                        values=[PanelMetric(legend="AUC", metric="evidently:metric_v2:RocAuc")]),
        line_plot_panel(title="Mean error per customer (matured)", size="half", values=[
            PanelMetric(legend="mean error", metric="evidently:metric_v2:MeanError",
                        metric_labels={"value_type": "mean"})]),
        line_plot_panel(title="Mean absolute error (matured)",
                        values=[PanelMetric(legend="MAE", metric="evidently:metric_v2:MAE",
                                            metric_labels={"value_type": "mean"})]),
    ]
