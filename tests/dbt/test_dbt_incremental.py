"""Second runs of the incremental models (int_customer_features, _sequences, _events): a cutoff is rebuilt exactly
when it is new or its inputs changed, is kept otherwise, and the marts always equal a fresh full build."""
from __future__ import annotations

import shutil
from datetime import date

import pandas as pd

from tests.dbt.conftest import (BASE_VARS, Warehouse, base_frames, build_warehouse, orders_frame, run_dbt_build,
                                write_raw)

SCORE, HOLDOUT, TRAIN = date(2025, 3, 31), date(2025, 3, 1), date(2025, 1, 30)
INCREMENTAL = ("int_customer_features", "int_customer_sequences", "int_customer_events")
MARTS = ("customer_features", "customer_sequences", "customer_events", "customer_labels", "customer_lifecycle")


def built_at(warehouse: Warehouse) -> dict[str, dict[date, pd.Timestamp]]:
    """When each cutoff of each incremental model was built."""
    return {m: warehouse.table(m).groupby("cutoff_date")["built_at"].max().rename(lambda d: d.date()).to_dict()
            for m in INCREMENTAL}


def rebuilt(before: Warehouse, after: Warehouse) -> dict[str, set[date]]:
    b, a = built_at(before), built_at(after)
    return {m: {c for c in a[m] if b[m].get(c) != a[m][c]} for m in INCREMENTAL}


def rerun(source: Warehouse, root, name: str, dbt_vars: dict, frames: dict | None = None) -> Warehouse:
    """A copy of `source`'s warehouse, its raw tables replaced by `frames` if given, built again with `dbt_vars`."""
    work = root / name
    work.mkdir()
    path = work / "warehouse.duckdb"
    shutil.copyfile(source.path, path)
    if frames is not None:
        write_raw(path, frames)
    return Warehouse(path, run_dbt_build(path, work, dbt_vars).stdout)


def assert_marts_equal(a: Warehouse, b: Warehouse) -> None:
    for model in MARTS:
        pd.testing.assert_frame_equal(a.table(model), b.table(model), obj=model)


def test_a_rerun_on_the_same_data_rebuilds_nothing(warehouse, dbt_root):
    again = rerun(warehouse, dbt_root, "same", BASE_VARS)
    assert rebuilt(warehouse, again) == {m: set() for m in INCREMENTAL}
    assert_marts_equal(again, warehouse)


def test_changes_after_a_cutoff_rebuild_only_the_later_cutoffs(warehouse, warehouse_rebuilt_after_changes,
                                                               warehouse_after_changes):
    # every change of after_holdout_changes is dated after 2025-03-01: train and holdout features are kept
    assert rebuilt(warehouse, warehouse_rebuilt_after_changes) == {m: {SCORE} for m in INCREMENTAL}
    assert_marts_equal(warehouse_rebuilt_after_changes, warehouse_after_changes)


def test_a_late_refund_before_every_cutoff_rebuilds_them_all(warehouse, dbt_root):
    frames = base_frames()
    frames["orders"] = pd.concat([frames["orders"], orders_frame([
        ("a2", "A", "2025-01-20 09:00:00", -50.0, 1, "returned", "y"),  # arrives late, dated before every cutoff
    ])], ignore_index=True)
    late = rerun(warehouse, dbt_root, "late_refund", BASE_VARS, frames)
    assert rebuilt(warehouse, late) == {m: {TRAIN, HOLDOUT, SCORE} for m in INCREMENTAL}
    fresh = build_warehouse(dbt_root, "late_refund_fresh", frames, BASE_VARS)
    assert_marts_equal(late, fresh)
    a = late.table("customer_features")
    assert a[(a.customer_id == "A") & (a.cutoff_date == pd.Timestamp(TRAIN))]["n_returns"].item() == 2


def test_moving_as_of_by_one_horizon_builds_only_the_new_cutoff(warehouse, dbt_root):
    moved_vars = {**BASE_VARS, "as_of": "2025-04-30"}  # cutoffs 04-30 (new), 03-31 and 03-01 (kept); 01-30 goes
    moved = rerun(warehouse, dbt_root, "moved", moved_vars)
    assert rebuilt(warehouse, moved) == {m: {date(2025, 4, 30)} for m in INCREMENTAL}
    assert set(built_at(moved)["int_customer_features"]) == {date(2025, 4, 30), SCORE, HOLDOUT}
    assert_marts_equal(moved, build_warehouse(dbt_root, "moved_fresh", base_frames(), moved_vars))


def test_a_var_that_changes_values_rebuilds_every_cutoff(warehouse, dbt_root):
    again = rerun(warehouse, dbt_root, "weeks", {**BASE_VARS, "sequence_weeks": 5})
    assert rebuilt(warehouse, again) == {m: {TRAIN, HOLDOUT, SCORE} for m in INCREMENTAL}
    assert again.table("customer_sequences")["week_index"].max() == 4
