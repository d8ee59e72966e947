"""Real-export shapes (ml/data/shapes.py) end to end: through `clv predict` and through Dagster, each scoring every
customer it saw, ranking them against the simulator's truth, and accounting for the money of a line-level export
to the cent."""
from __future__ import annotations

from decimal import Decimal

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.cli import main
from ml.evaluation.metrics import normalized_gini
from ml.data.shapes import SHAPES, make_shape
from tests.scenario import materialize, shop_env

MODELS = "historic_spend_rate,btyd,linear,gradient_boosting"  # the data path is under test here, not the zoo


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return {name: make_shape(name, root / name, n_customers=900, seed=5) for name in SHAPES}


def predict(export, tmp_path, capsys) -> tuple[pd.DataFrame, str]:
    out = tmp_path / "scores.csv"
    code = main(["predict", *export.cli_args(), "--out", str(out), "--fast", "--models", MODELS,
                 "--workdir", str(tmp_path / "work")])
    err = capsys.readouterr().err
    assert code == 0, err
    return pd.read_csv(out), err


def expected_money(export) -> dict[str, Decimal]:
    """The line-level file's money, computed here from the file itself (not by the code under test)."""
    lines = pd.read_csv(export.folder / "orders.csv", dtype={"InvoiceNo": str, "CustomerID": str})
    cents = lambda x: Decimal(str(round(float(x), 2)))  # noqa: E731
    lines["amount"] = lines["Quantity"] * lines["UnitPrice"]
    known = lines["CustomerID"].notna()
    dup = known & lines.duplicated(keep="first")
    customers = lines[known & ~dup].groupby("InvoiceNo")["CustomerID"].nunique()
    conflict = known & ~dup & lines["InvoiceNo"].isin(customers[customers > 1].index)
    kept = lines[known & ~dup & ~conflict]
    return {"read": cents(lines["amount"].sum()), "kept": cents(kept["amount"].sum()),
            "held": cents(lines.loc[~known | dup | conflict, "amount"].sum()),
            "refunds": cents(-kept.loc[kept["amount"] < 0, "amount"].sum()),
            "rows_held": int((~known | dup | conflict).sum())}


@pytest.mark.parametrize("name", SHAPES)
def test_every_shape_runs_through_clv_predict(shapes, name, tmp_path, capsys):
    export = shapes[name]
    scores, err = predict(export, tmp_path, capsys)
    truth = export.truth.set_index("customer_id")
    assert scores["customer_id"].is_unique and set(scores["customer_id"]) <= set(truth.index)
    assert scores["p_return"].between(0, 1).all() and (scores["predicted_value"] >= 0).all()
    value = truth["expected_value"].reindex(scores["customer_id"]).to_numpy()
    # the scores rank customers like the truth does, and the total is in the truth's range
    assert normalized_gini(value, scores["predicted_value"].to_numpy()) > 0.6, name
    assert 0.6 < scores["predicted_value"].sum() / value.sum() < 1.6, name
    assert "(difference 0.00)" in err
    if name == "short_history":
        assert "judged on a" in err  # the backtest horizon was shortened, and it says so
    if name == "line_level":
        money = expected_money(export)
        assert (f"{money['read']:,.2f} read = {money['kept']:,.2f} kept" in err
                and f"refunds {money['refunds']:,.2f}) + {money['held']:,.2f} quarantined" in err), err
        assert f"+ {money['rows_held']:,} quarantined" in err


@pytest.mark.parametrize("name", ["line_level", "single_cohort"])
def test_shapes_run_through_dagster(shapes, name, tmp_path):
    export = shapes[name]
    home = tmp_path / "home"
    overrides = dict(as_of=export.as_of.isoformat(), horizon_days=export.horizon_days, source=export.source(),
                     training={"fast": True, "models": MODELS.split(","), "search_budget_seconds": 0})
    with dg.instance_for_test() as instance, shop_env(home, **overrides) as cfg:
        result = materialize(home, cfg, instance, selection=dg.AssetSelection.keys("customer_scores").upstream())
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey(["shop", "orders"]))
        orders = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        assert orders["money_balances"] and orders["rows_read"] == orders["rows_accepted"] + orders["rows_quarantined"]
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            scores = con.execute("SELECT customer_id, predicted_value FROM customer_scores").df()
        truth = export.truth.set_index("customer_id")["expected_value"].reindex(scores["customer_id"]).to_numpy()
        assert len(scores) > 500 and normalized_gini(truth, scores["predicted_value"].to_numpy()) > 0.6
        if name == "line_level":
            money = expected_money(export)
            assert round(orders["amount_kept"], 2) == float(money["kept"])
            assert round(orders["amount_quarantined"], 2) == float(money["held"])
        assert np.isfinite(scores["predicted_value"]).all()
