"""Drift checks against real Evidently 0.7 (no mocks), on small synthetic customer frames.

Sizes are chosen for stability, not luck: with 5000 rows per frame Evidently uses the normed Wasserstein /
Jensen-Shannon distances (threshold 0.1). Over 100 independent same-distribution pairs of these frames the
largest score seen was 0.068 (numerical) and 0.029 (categorical), so "no drift" holds with margin; the shifts
used below score about 1.0 (numeric, +1 std) and 0.35 (channel mix), far above 0.1.
"""
from __future__ import annotations

import os

os.environ.setdefault("DO_NOT_TRACK", "1")

from datetime import datetime, timezone  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ml.monitoring.drift import DriftResult, feature_drift, prediction_drift  # noqa: E402

NUM = ["recency_days", "frequency", "monetary", "tenure_days", "avg_basket"]
CAT = ["channel", "country"]
N = 5000


def customers(n: int, seed: int, channel_p=(0.6, 0.3, 0.1)) -> pd.DataFrame:
    """Feature frame shaped like the platform's: mixed numeric distributions, two categoricals."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),  # not a feature: must be ignored because it is not named
            "recency_days": rng.uniform(0, 365, n),
            "frequency": rng.poisson(3, n),  # int with few values: declared numerical, must stay numerical
            "monetary": rng.lognormal(4, 1, n),
            "tenure_days": rng.integers(30, 1500, n),
            "avg_basket": rng.gamma(2, 30, n),
            "channel": rng.choice(["web", "app", "store"], n, p=channel_p),
            "country": rng.choice(["DE", "FR", "NL", "BE", "AT"], n, p=[0.4, 0.25, 0.15, 0.1, 0.1]),
        }
    )


def drifted_copy(reference: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Independent sample where 3 of 5 numeric columns move by one reference std and the channel mix flips."""
    cur = customers(len(reference), seed, channel_p=(0.2, 0.3, 0.5))
    for c in ("recency_days", "monetary", "avg_basket"):
        cur[c] = cur[c] + reference[c].std()
    return cur


def assert_consistent(r: DriftResult) -> None:
    assert r.n_drifted == len(r.drifted_columns)
    assert r.n_columns == len(r.column_scores)
    assert set(r.drifted_columns) <= set(r.column_scores)
    assert r.share == pytest.approx(r.n_drifted / r.n_columns)
    assert all(isinstance(v, float) for v in r.column_scores.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_distribution_reports_no_drift(seed):
    r = feature_drift(customers(N, 100 + seed), customers(N, 200 + seed), NUM, CAT)
    assert_consistent(r)
    assert r.share < 0.3
    assert r.drifted_columns == []
    assert r.n_columns == 7 and set(r.column_scores) == set(NUM + CAT)
    assert r.html_path is None


def test_shifted_columns_are_flagged():
    ref = customers(N, 1)
    r = feature_drift(ref, drifted_copy(ref, 2), NUM, CAT)
    assert_consistent(r)
    assert set(r.drifted_columns) == {"recency_days", "monetary", "avg_basket", "channel"}
    assert r.n_drifted == 4 and r.share >= 0.5
    assert min(r.column_scores[c] for c in r.drifted_columns) > 0.1


def test_small_frames_use_p_values_and_flags_still_follow_evidently():
    """<= 1000 reference rows: the score is a K-S p-value (low = drift), so flags must not be 'score > threshold'."""
    ref, cur = customers(600, 11), customers(600, 12)
    cur["monetary"] = cur["monetary"] * 3
    r = feature_drift(ref, cur, ["monetary"], [])
    assert r.drifted_columns == ["monetary"]
    assert r.column_scores["monetary"] < 0.05


def test_html_report_written_to_new_folder(tmp_path):
    target = tmp_path / "reports" / "2025-12-31" / "drift.html"  # a Path, parent missing
    ref = customers(2000, 1)
    r = feature_drift(ref, drifted_copy(ref, 2), NUM, CAT, html_path=target)
    assert r.html_path == str(target)
    assert target.stat().st_size > 0
    assert "html" in target.read_text(encoding="utf-8")[:2000].lower()


def test_workspace_collects_runs_in_one_project(tmp_path):
    from evidently.ui.workspace import Workspace

    ws_path = tmp_path / "evidently"
    ref = customers(2000, 1)
    cutoffs = [datetime(2025, 12, 24, tzinfo=timezone.utc), datetime(2025, 12, 31, tzinfo=timezone.utc)]
    feature_drift(ref, customers(2000, 2), NUM, CAT, workspace=ws_path, project_name="clv", timestamp=cutoffs[0])
    feature_drift(ref, drifted_copy(ref, 3), NUM, CAT, workspace=ws_path, project_name="clv", timestamp=cutoffs[1])

    ws = Workspace(str(ws_path))  # read back from disk, as `evidently ui --workspace` would
    projects = ws.search_project("clv")
    assert len(projects) == 1
    runs = ws.list_runs(projects[0].id)
    assert len(runs) == 2
    assert all(ws.get_run(projects[0].id, run_id) is not None for run_id in runs)
    panels = ws.get_dashboard(projects[0].id).panels
    assert [p.title for p in panels] == ["Share of drifted columns", "Drifted columns", "Drift score per column"]
    # each run is dated by the cutoff it judges, so a backfill draws its points in order
    dated = sorted(ws.get_run(projects[0].id, r).timestamp.replace(tzinfo=timezone.utc) for r in runs)
    assert dated == cutoffs

    # prediction drift goes to its own project by default, next to the feature one
    scores = pd.DataFrame({"predicted_value": ref["monetary"], "p_return": ref["recency_days"] / 365})
    prediction_drift(scores, scores, workspace=ws_path)
    assert len(ws.list_projects()) == 2
    assert len(ws.list_runs(ws.search_project("clv-predictions")[0].id)) == 1
    assert len(ws.list_runs(projects[0].id)) == 2


def test_all_null_columns_are_ignored():
    ref, cur = customers(N, 1), customers(N, 2)
    ref["new_feature"] = pd.array([pd.NA] * N, dtype="Float64")  # not yet populated in the reference
    cur["new_feature"] = 1.0
    cur["segment"] = None  # entirely missing in the current frame only
    ref["segment"] = "vip"
    cur["ltv_90d"] = np.nan
    ref["ltv_90d"] = 5.0
    r = feature_drift(ref, cur, NUM + ["new_feature", "ltv_90d"], CAT + ["segment"])
    assert_consistent(r)
    assert r.n_columns == 7
    assert not {"new_feature", "ltv_90d", "segment"} & (set(r.column_scores) | set(r.drifted_columns))
    assert r.drifted_columns == []


def test_nullable_and_string_dtypes():
    ref, cur = customers(N, 1), customers(N, 2)
    for frame, string_dtype in ((ref, "string[pyarrow]"), (cur, "string[python]")):
        frame["channel"] = frame["channel"].astype(string_dtype)
        frame.loc[frame.index[::50], "channel"] = pd.NA  # some missing, equally in both
        frame["country"] = frame["country"].astype("category")
        frame["frequency"] = frame["frequency"].astype("Int64")
        frame.loc[frame.index[::40], "frequency"] = pd.NA
        frame["monetary"] = frame["monetary"].astype("double[pyarrow]")
        frame["tenure_days"] = frame["tenure_days"].astype("Int32")
    cur.loc[cur.index[:10], "avg_basket"] = np.inf  # treated as missing, as Evidently does
    r = feature_drift(ref, cur, NUM, CAT)
    assert_consistent(r)
    assert r.n_columns == 7 and r.drifted_columns == []

    shifted = cur.copy()
    shifted["channel"] = pd.array(np.random.default_rng(5).choice(["web", "app", "store"], N, p=[0.1, 0.1, 0.8]),
                                  dtype="string")
    assert feature_drift(ref, shifted, NUM, CAT).drifted_columns == ["channel"]


def test_category_values_compare_as_text():
    """1 in one frame and "1" in the other are one category (e.g. codes read from CSV vs parquet)."""
    rng = np.random.default_rng(0)
    codes = rng.choice([1, 2, 3], 3000)
    r = feature_drift(pd.DataFrame({"tier": codes}), pd.DataFrame({"tier": codes.astype(str)}), [], ["tier"])
    assert r.drifted_columns == [] and r.column_scores["tier"] == pytest.approx(0.0, abs=1e-9)


def test_prediction_drift_on_scores():
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"predicted_value": rng.lognormal(4, 1, N), "p_return": rng.beta(2, 5, N)})
    cur = pd.DataFrame({"predicted_value": rng.lognormal(4, 1, N), "p_return": rng.beta(5, 2, N)})
    r = prediction_drift(ref, cur)
    assert_consistent(r)
    assert r.drifted_columns == ["p_return"] and r.share == 0.5


def test_large_frames_are_sampled_reproducibly():
    ref, cur = customers(60_000, 1), customers(60_000, 2)
    a = feature_drift(ref, cur, NUM, CAT, max_rows=5000, seed=3)
    b = feature_drift(ref, cur, NUM, CAT, max_rows=5000, seed=3)
    assert a == b and a.drifted_columns == []


def test_bad_inputs_fail_loudly():
    ref = customers(100, 1)
    with pytest.raises(KeyError):
        feature_drift(ref, ref.drop(columns="monetary"), NUM, CAT)
    with pytest.raises(ValueError, match="both"):
        feature_drift(ref, ref, ["channel"], ["channel"])
    with pytest.raises(ValueError, match="NULL"):
        feature_drift(ref.assign(x=np.nan), ref.assign(x=np.nan), ["x"], [])
    with pytest.raises(ValueError, match="non-numeric"):
        feature_drift(ref, ref, ["channel"], [])


def test_the_report_calls_drift_at_the_configured_share(tmp_path):
    """Evidently's own verdict in the report uses the platform's threshold, not its default of 0.5."""
    ref = customers(2000, 1)
    html = tmp_path / "drift.html"
    feature_drift(ref, drifted_copy(ref, 2), NUM, CAT, html_path=html, drift_share=0.2)
    text = html.read_text(encoding="utf-8")
    assert "threshold is 0.2" in text and "threshold is 0.5" not in text
