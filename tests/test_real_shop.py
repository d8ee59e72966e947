"""A real shop, CDNOW (it ships inside `lifetimes`): `clv predict` on its orders up to 1997-12-31, against what
customers spent in the next 181 days, beside lifetimes' BG/NBD + Gamma-Gamma fitted the usual way on the same orders.
benchmarks/real_shop.py prints the same comparison with the full (not --fast) zoo."""
from __future__ import annotations

import pandas as pd
import pytest

from ml.evaluation import cdnow
from ml.cli import main


@pytest.fixture(scope="module")
def cdnow_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cdnow")
    history, truth = cdnow.split(cdnow.load_orders())
    export = cdnow.write_export(history, tmp / "orders.csv")
    out = tmp / "scores.csv"
    code = main(["predict", "--orders", str(export), "--as-of", cdnow.AS_OF.isoformat(), "--horizon-days",
                 str(cdnow.HORIZON_DAYS), "--out", str(out), "--fast", "--workdir", str(tmp / "work")])
    assert code == 0
    ours = cdnow.five(truth, pd.read_csv(out, dtype={"customer_id": str}))
    theirs = cdnow.five(truth, cdnow.lifetimes_baseline(history, cdnow.AS_OF, cdnow.HORIZON_DAYS))
    return ours, theirs


def test_every_cdnow_customer_is_scored(cdnow_run):
    ours, theirs = cdnow_run
    assert ours["customers"] == theirs["customers"] == 23_570 and ours["unscored"] == 0


def test_the_project_ranks_at_least_as_well_as_btyd_and_its_total_holds(cdnow_run):
    ours, theirs = cdnow_run
    # lifetimes, measured the same way: Gini 0.726, Spearman 0.435, total error -3.5 %
    assert ours["normalized_gini"] >= theirs["normalized_gini"], (ours, theirs)
    assert ours["spearman"] >= theirs["spearman"], (ours, theirs)
    assert abs(ours["total_error"]) <= 0.10, ours
    # every customer is older at t than anyone at t - H (one cohort): the champion must extrapolate in age, so its
    # deciles hold (a forest's come out compressed: decile MAPE 0.23-0.40 here, lifetimes 0.22)
    assert ours["decile_mape"] <= theirs["decile_mape"], (ours, theirs)
    assert ours["return_auc"] >= theirs["return_auc"] - 0.01, (ours, theirs)
