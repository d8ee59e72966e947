"""The model zoo in the real graph on the seeded test shop: leaderboard, pictures, champion / challenger, scores."""
from __future__ import annotations

import json

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from ml.data.windows import read_window
from ml.models.zoo import MODEL_NAMES, load_model
from orchestration.assets import modeling
from tests.scenario import materialize, metadata

PNG = b"\x89PNG\r\n\x1a\n"


def board(home) -> pd.DataFrame:
    return pd.read_csv(home / "reports" / "2025-12-31" / "leaderboard.csv").set_index("model")


def champion(home) -> dict:
    root = home / "models" / "registry"
    return json.loads((root / (root / "champion").read_text().strip() / "metrics.json").read_text())


def test_every_zoo_model_is_on_one_leaderboard_with_the_oracle(clean_shop, instance):
    home = clean_shop[0]
    table = board(home)
    assert set(table.index) == set(MODEL_NAMES) | {"oracle"}
    holdout = read_window(home / "datasets" / "2025-12-31" / "eval_0")
    assert (table.loc["oracle", "normalized_gini"] >= table.drop(index="oracle")["normalized_gini"]).all()
    md = metadata(instance, modeling.model_evaluation)
    assert md["holdout_cutoff"] == str(holdout.cutoff) and md["customers"] == len(holdout)
    for name in MODEL_NAMES:
        assert f"| {name}" in md["leaderboard"]
    assert len(md["leaderboard_table"].records) == len(table)
    for picture in ("gain_curves", "deciles", "return_calibration", "feature_importance"):
        assert md[picture].startswith("![") and "(data:image/png;base64," in md[picture]
        assert (home / "reports" / "2025-12-31" / f"{picture}.png").read_bytes()[:8] == PNG


def test_champion_beats_the_heuristic_and_btyd_out_of_time(clean_shop):
    home = clean_shop[0]
    table = board(home)
    best = champion(home)
    row = table.loc[best["model"]]
    assert best["metrics"]["normalized_gini"] == round(row["normalized_gini"], 5)
    assert row["normalized_gini"] > table.loc["historic_spend_rate", "normalized_gini"] + 0.1, table
    assert row["normalized_gini"] > table.loc["btyd", "normalized_gini"] + 0.05, table
    assert row["spearman"] > table.loc["btyd", "spearman"]
    assert row["return_auc"] > table.loc["btyd", "return_auc"]


def test_the_event_stream_transformer_learns_on_the_test_shop(clean_shop):
    """deep_transformer (ml/models/zoo/deep_transformer.py) reads the shop's event streams and ranks well above the
    rule of thumb and a constant (Gini 0) out of time; tests/test_transformer.py has its parts."""
    table = board(clean_shop[0])
    gini = table.loc["deep_transformer", "normalized_gini"]
    assert gini > table.loc["historic_spend_rate", "normalized_gini"] + 0.1 and gini > 0.5, table
    production = read_window(clean_shop[0] / "datasets" / "2025-12-31" / "production")
    assert production.events.shape[1] > 1 and (production.events[:, :, 0] > 0).any()  # the streams were read


def test_calibration_brings_the_backtest_total_closer_to_what_happened(clean_shop):
    home = clean_shop[0]
    holdout = read_window(home / "datasets" / "2025-12-31" / "eval_0")
    model = load_model(home / "models" / "backtest" / "2025-12-31" / champion(home)["model"])
    factor = model.info["calibration"]
    assert model.info["calibration_window"] == str(read_window(home / "datasets" / "2025-12-31" / "calibration_eval").cutoff)
    total = model.predict(holdout.features, holdout.sequences)["predicted_value"].sum()
    assert factor > 1  # the holdout horizon has the year-end season the training horizon lacks
    assert abs(total / holdout.y.sum() - 1) < abs(total / factor / holdout.y.sum() - 1)


def test_the_champion_scores_every_customer_with_reasons(clean_shop, instance):
    home = clean_shop[0]
    best = champion(home)
    production = load_model(home / "models" / "production")
    assert production.info["model_id"] == best["version"] and production.name == best["model"]
    assert metadata(instance, modeling.customer_scores)["model_version"] == best["version"]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        scores = con.execute("SELECT * FROM customer_scores").df()
    assert scores["reasons"].str.count("the expected value by").eq(3).all()
    score = read_window(home / "datasets" / "2025-12-31" / "score")
    expected = production.predict(score.features, score.sequences)
    np.testing.assert_allclose(scores["predicted_value"].to_numpy(), expected["predicted_value"].to_numpy(), rtol=1e-5)


def test_a_challenger_no_better_than_the_champion_is_kept_but_not_promoted(clean_shop, instance):
    home, cfg, _ = clean_shop
    before = champion(home)["version"]
    materialize(home, cfg, instance, selection=dg.AssetSelection.assets(modeling.clv_model))
    md = metadata(instance, modeling.clv_model)
    # the same recipe on the same data: rescored, the champion is as good, and the margin is not met
    assert md["promoted"] is False and "rescored" in md["decision"], md["decision"]
    assert md["champion"] == before == champion(home)["version"]
    versions = sorted(p.name for p in (home / "models" / "registry").iterdir() if p.is_dir())
    assert md["version"] in versions and len(versions) >= 2
    kept = json.loads((home / "models" / "registry" / md["version"] / "metrics.json").read_text())
    assert kept["promoted"] is False and kept["decision"]["champion"] == before
    assert load_model(home / "models" / "production").info["model_id"] == before
