"""The zoo's parts on small real data: ZILN head sanity, calibration, leaderboard choice, registry decisions,
hyperparameter search within a budget, save/load of every kind. No Dagster here (tests/test_models.py has it)."""
from __future__ import annotations

import math
import os
import threading
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm

import ml.models.zoo as zoo_registry
from ml.data.windows import Window
from ml.evaluation.leaderboard import choose, leaderboard, to_markdown, to_records
from ml.evaluation.metrics import decile_mape, display, normalized_gini, top_value_metrics
from ml.models import ziln
from ml.models.calibration import calibrate
from ml.models.interface import PREDICTION_COLUMNS, ClvModel
from ml.models.preprocess import Preprocessor
from ml.models.zoo import BASELINES, DEFAULT_MODELS, MODEL_NAMES, ZOO, fit_zoo, load_model, with_dependencies
from ml.settings import TrainingConfig


def shop_window(n: int = 1500, seed: int = 0, cutoff: date = date(2025, 7, 4), scale: float = 1.0) -> Window:
    """A labelled window with the columns of customer_features: values follow a hidden rate, like a shop."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.8, 1.0, n)
    orders = rng.poisson(rate * 3)
    spend = orders * rng.gamma(4.0, 12.0, n)
    has = orders > 0
    recency = np.where(has, rng.integers(1, 300, n), np.nan)
    age = np.where(has, recency + rng.integers(0, 200, n), np.nan)
    features = pd.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(n)], "cutoff_date": pd.Timestamp(cutoff),
        "n_orders": orders, "total_spend": spend, "tenure_days": np.nan_to_num(age, nan=30) + 5,
        "recency_days": recency, "orders_90d": rng.poisson(rate), "events_30d": rng.poisson(rate * 4),
        "avg_order_value": np.where(has, spend / np.maximum(orders, 1), np.nan),
        "btyd_frequency": np.maximum(orders - 1, 0), "btyd_recency_days": np.where(orders > 1, age - recency, 0),
        "btyd_age_days": age, "btyd_monetary": np.where(orders > 1, spend / np.maximum(orders, 1), 0.0),
        "channel": rng.choice(["organic", "social", "email"], n),
    })
    returned = rng.uniform(size=n) < 1 - np.exp(-rate * (1 + 0.5 * (features["events_30d"] > 2)))
    value = np.where(returned, rng.lognormal(np.log(30 * (1 + rate)), 0.6), 0.0) * scale
    labels = pd.DataFrame({"customer_id": features["customer_id"], "future_value": value,
                           "future_orders": returned.astype(int), "returned": returned})
    weeks = rng.poisson(rate[:, None, None] * 0.2, size=(n, 8, 6)).astype(np.float32)
    return Window(cutoff, features, weeks, pd.Series(["active"] * n), labels)


@pytest.fixture(scope="module")
def zoo():
    window = shop_window()
    return window, fit_zoo(window, 90, TrainingConfig(fast=True, search_budget_seconds=0), names=MODEL_NAMES)


def test_ziln_expected_value_stays_sane_with_a_wild_sigma():
    logits = torch.tensor([[3.0, 5.0, 50.0], [0.0, 2.0, -5.0]])
    cap = math.log(1000.0)
    value = ziln.expected_value(logits, cap)
    assert torch.isfinite(value).all()
    assert value[0] <= 1000.0 + 1e-3  # sigma is bounded and the mean is capped
    _, _, sigma = ziln.split_logits(logits)
    assert sigma.max() <= ziln.SIGMA_MAX and sigma.min() >= ziln.SIGMA_MIN
    q = [ziln.quantile(logits, level, cap) for level in (0.1, 0.5, 0.9)]
    assert (q[0] <= q[1]).all() and (q[1] <= q[2]).all()


def test_head_init_starts_at_the_population():
    y = np.array([0, 0, 0, 10, 20, 40], dtype=float)
    p_logit, mu, raw_sigma = ziln.head_init(y)
    logits = torch.tensor([[p_logit, mu, raw_sigma]])
    assert ziln.return_probability(logits).item() == pytest.approx(0.5)
    assert ziln.split_logits(logits)[1].item() == pytest.approx(np.log([10, 20, 40]).mean())


def test_mixture_quantiles_match_the_torch_quantile():
    p, mu, sigma = np.array([0.05, 0.5, 0.95]), np.array([1.0, 2.0, 3.0]), 0.7
    q10, q50, q90 = ziln.mixture_quantiles(p, mu, sigma)
    assert q10[0] == q50[0] == q90[0] == 0.0  # 95 % zero mass: every quantile up to 0.9 is zero
    level = (0.5 - 0.05) / 0.95  # the median of the mixture is this quantile of the lognormal
    assert q50[2] == pytest.approx(np.exp(3.0 + 0.7 * norm.ppf(level)), rel=1e-4)
    assert (q10 <= q50).all() and (q50 <= q90).all()


def test_every_zoo_model_trains_predicts_and_round_trips(zoo, tmp_path):
    window, result = zoo
    assert not result.failures, result.failures
    assert list(result.models) == list(MODEL_NAMES)
    for name, model in result.models.items():
        pred = model.predict(window.features, window.sequences)
        assert list(pred.columns) == PREDICTION_COLUMNS and len(pred) == len(window)
        assert (pred["predicted_value"] >= 0).all(), name
        if model.servable:
            assert pred["p_return"].between(0, 1).all(), name
            assert (pred["value_p10"] <= pred["value_p50"] + 1e-9).all() and \
                   (pred["value_p50"] <= pred["value_p90"] + 1e-9).all(), name
        again = load_model(model.save(tmp_path / name))
        assert again.name == name
        pd.testing.assert_frame_equal(again.predict(window.features, window.sequences), pred, rtol=1e-5)
        # rows picked out of a window keep their index: each still gets its own prediction
        at = np.arange(3, len(window), 7)
        picked = model.predict(window.features.iloc[at], window.sequences[at], window.events[at])
        pd.testing.assert_frame_equal(picked, pred.iloc[at].reset_index(drop=True), rtol=1e-5, obj=name)


def test_each_member_is_one_class_in_a_file_of_its_name():
    assert len({m.name for m in ZOO}) == len(ZOO) and all(m.description for m in ZOO)
    for member in ZOO:
        assert member.__module__ == f"ml.models.zoo.{member.name}", member
        module = __import__(member.__module__, fromlist=["_"])
        own = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, ClvModel)
               and v.__module__ == module.__name__]
        assert own == [member], (member.name, own)


def test_the_deep_recipe_is_found_in_the_network_and_in_the_ensemble_that_stacks_it(zoo):
    _, result = zoo
    recipe = result.models["deep_ziln"].recipe()
    assert recipe is not None and recipe.hidden == result.models["deep_ziln"].info["config"]["hidden"]
    assert result.models["ensemble"].recipe() == recipe  # fit_production retrains the ensemble's network so
    assert result.models["gradient_boosting"].recipe() is None and result.models["btyd"].recipe() is None


def test_a_registry_written_before_the_zoo_was_a_registry_still_loads(zoo, tmp_path):
    """model.json files of the flat layout said their kind ("hurdle", "deep"...), the zoo name only in info."""
    import json

    window, result = zoo
    for name in ("gradient_boosting", "deep_ziln", "ensemble"):
        folder = result.models[name].save(tmp_path / name)
        for saved in folder.glob("**/model.json"):
            old = json.loads(saved.read_text())
            old["kind"] = {"deep_ziln": "deep", "ensemble": "ensemble", "btyd": "btyd"}.get(old.pop("name"), "hurdle")
            saved.write_text(json.dumps(old))
        again = load_model(folder)
        assert type(again) is type(result.models[name]) and again.name == name
        pd.testing.assert_frame_equal(again.predict(window.features, window.sequences),
                                      result.models[name].predict(window.features, window.sequences), rtol=1e-6)


class Constant(ClvModel):
    """A member written the way a new one would be: one class (here), one line in ZOO (here: the registry)."""
    name = "constant"
    description = "the mean value of the training rows, for everyone"

    @classmethod
    def fit(cls, window, ctx):
        train = ctx.split[0]
        return cls(Preprocessor.fit(window.features, window.sequences),
                   {"mean": float(window.y[train].mean()), "p": float((window.y[train] > 0).mean())})

    def predict_raw(self, features, sequences):
        n = len(features)
        value, p = np.full(n, self.info["mean"]), np.full(n, self.info["p"])
        return pd.DataFrame({"predicted_value": value, "p_return": p, "value_p10": 0.0 * value,
                             "value_p50": value, "value_p90": 2 * value})

    @classmethod
    def restore(cls, folder, prep, info, spec, load):
        return cls(prep, info)


def test_a_new_member_needs_its_class_and_its_registry_line_only(monkeypatch, tmp_path):
    window = shop_window(n=300, seed=4)
    with pytest.raises(ValueError, match="unknown model name"):
        fit_zoo(window, 90, TrainingConfig(fast=True), names=["constant"])
    monkeypatch.setitem(zoo_registry.MEMBERS, "constant", Constant)
    result = fit_zoo(window, 90, TrainingConfig(fast=True), names=["constant"])
    model = result.models["constant"]
    assert not result.failures and model.info["mean"] > 0 and model.info["train_cutoff"] == str(window.cutoff)
    again = load_model(model.save(tmp_path / "constant"))
    assert type(again) is Constant
    pd.testing.assert_frame_equal(again.predict(window.features, window.sequences),
                                  model.predict(window.features, window.sequences))


def test_learned_models_rank_better_than_the_rule_of_thumb(zoo):
    window, result = zoo
    holdout = shop_window(seed=1, cutoff=date(2025, 10, 2))
    preds = {n: m.predict(holdout.features, holdout.sequences) for n, m in result.models.items()}
    board = leaderboard(holdout.y, preds).set_index("model")
    for name in ("gradient_boosting", "deep_ziln", "ensemble"):
        assert board.loc[name, "normalized_gini"] > board.loc["historic_spend_rate", "normalized_gini"], board


def test_calibration_recovers_a_seasonal_level(zoo):
    """A model trained on a quiet horizon under-predicts a season; the year-ago window's ratio fixes the total."""
    window, result = zoo
    model = result.models["gradient_boosting"]
    season = shop_window(n=3000, seed=2, scale=1.6)  # the same customers' kind, 60 % more spend in the season
    factor = calibrate(model, season)
    assert 1.3 < factor < 1.9
    scored = shop_window(n=3000, seed=3, scale=1.6)
    total = model.predict(scored.features, scored.sequences)["predicted_value"].sum()
    assert abs(total / scored.y.sum() - 1) < abs(total / factor / scored.y.sum() - 1)
    assert calibrate(model, None) == 1.0 and "uncalibrated" in model.info["calibration_note"]


def test_an_empty_calibration_window_means_no_calibration_said_never_a_crash():
    model = fit_zoo(shop_window(n=400, seed=2), 90, names=["historic_spend_rate"]).models["historic_spend_rate"]
    empty = shop_window(n=400, seed=2)
    empty = type(empty)(empty.cutoff, empty.features.iloc[:0], empty.sequences[:0], empty.lifecycle.iloc[:0], None, 90)
    assert calibrate(model, empty) == 1.0 and "holds no labelled customers" in model.info["calibration_note"]


def test_choose_prefers_calibrated_deciles_among_near_ties():
    board = pd.DataFrame({"model": ["a", "b", "c", "btyd"], "normalized_gini": [0.80, 0.799, 0.70, 0.90],
                          "decile_mape": [math.inf, 0.12, 0.05, 0.01]})
    assert choose(board, ["a", "b", "c"]) == "a"
    assert choose(board, ["a", "b", "c"], tolerance=0.005) == "b"  # a's edge is noise; b's deciles are finite
    with pytest.raises(ValueError):
        choose(board, [])


def test_infinite_decile_mape_is_kept_and_displayable():
    y = np.array([0.0] * 10 + [5.0] * 10)
    p = np.arange(20, dtype=float)
    assert decile_mape(y, p) == math.inf  # a bucket with actual mean 0 and a positive prediction
    board = leaderboard(y, {"m": pd.DataFrame({"predicted_value": p, "p_return": p / 20})})
    assert "∞" in to_markdown(board) and to_records(board)[0]["decile_mape"] == "inf"
    assert display(math.inf) == "∞" and display(float("nan")) == ""


def test_top_value_metrics():
    y = np.array([0, 0, 0, 0, 0, 0, 0, 0, 10, 20.0])
    assert top_value_metrics(y, y)["top20_f1"] == 1.0
    assert top_value_metrics(y, -y)["top20_recall"] == 0.0


def test_search_stays_within_its_budget_and_keeps_the_best_trial():
    from ml.models.search import base_config, search
    from ml.models.training import validation_split

    window = shop_window(n=800)
    base = base_config(len(window), fast=True)
    base.max_epochs = 2
    split = validation_split(len(window), base.val_share, 0)
    model, trials = search(window, base, budget_seconds=4.0, split=split)
    assert len(trials) >= 1 and trials[0]["hidden"] == base.hidden  # the default configuration goes first
    assert model.info["best_val_loss"] == pytest.approx(min(t["val_loss"] for t in trials), abs=1e-4)
    assert sum(t["seconds"] for t in trials) < 4.0 + 2 * max(t["seconds"] for t in trials)


def test_registry_promotes_only_a_challenger_better_by_the_margin(zoo, tmp_path, monkeypatch):
    from ml import registry

    monkeypatch.setenv("CLV_HOME", str(tmp_path))
    window, result = zoo
    holdout = shop_window(seed=1, cutoff=date(2025, 10, 2))

    def add(name: str, gini: float) -> str:
        model = result.models[name]
        version = registry.new_version(name)
        registry.register(version, model, model, {"model": name, "backtest_cutoff": "2025-07-04",
                                                  "metrics": {"normalized_gini": gini}})
        return version

    first = add("gradient_boosting", 0.70)
    decision = registry.decide(first, holdout, 90, margin=0.01)
    assert decision.promote and decision.reason == "no champion yet"
    registry.promote(first, decision)
    assert registry.champion_version() == first
    assert load_model(registry.champion_dir()).name == "gradient_boosting"

    # the champion's backtest model is scored again on this holdout (out of time for it): its real Gini counts
    rescored = registry.decide(add("linear", 0.0), holdout, 90, margin=0.01)
    assert rescored.basis == "rescored" and not rescored.promote
    registry.promote(rescored.challenger, rescored)
    assert registry.champion_version() == first

    better = add("historic_spend_rate", rescored.champion_gini + 0.05)
    decision = registry.decide(better, holdout, 90, margin=0.01)
    assert decision.promote
    registry.promote(better, decision)
    assert registry.champion_version() == better
    assert [r["promoted"] for r in registry.versions()] == [True, False, True]
    assert set(BASELINES) <= set(MODEL_NAMES)


def test_a_champion_that_cannot_score_the_new_features_gives_way(zoo, tmp_path, monkeypatch):
    from ml import registry

    monkeypatch.setenv("CLV_HOME", str(tmp_path))
    _, result = zoo
    model = result.models["gradient_boosting"]
    old = registry.new_version("gradient_boosting")
    registry.register(old, model, model, {"model": "gradient_boosting", "backtest_cutoff": "2025-07-04",
                                          "metrics": {"normalized_gini": 0.99}})
    registry.promote(old, registry.decide(old, shop_window(seed=1), 90, 0.01))
    holdout = shop_window(seed=1, cutoff=date(2025, 10, 2))
    holdout.features = holdout.features.drop(columns=["events_30d"])  # e.g. a shop without events
    new = registry.new_version("linear")
    registry.register(new, result.models["linear"], result.models["linear"],
                      {"model": "linear", "backtest_cutoff": "2025-07-04", "metrics": {"normalized_gini": 0.5}})
    decision = registry.decide(new, holdout, 90, 0.01)
    assert decision.promote and decision.basis == "incompatible" and "cannot score" in decision.reason


def test_a_champion_that_fails_to_retrain_gives_way_to_the_next_best(zoo):
    """BTYD wins the backtest, then cannot be fitted at t - H (no repeat customers there): the next recipe of the
    order serves instead, and the note says who gave way and why."""
    from ml.pipeline import Fold, Windows, fit_champion

    window, result = zoo
    production = shop_window(n=800, seed=9, cutoff=date(2025, 10, 2))
    production.features["btyd_frequency"] = 0  # BG/NBD needs repeat customers
    windows = Windows(score=shop_window(n=300, seed=10, cutoff=date(2025, 12, 31)), production=production,
                      folds=[Fold(window, production)])
    model, notes = fit_champion(["btyd", "linear"], result.models, windows, 90, TrainingConfig(fast=True))
    assert model.name == "linear" and len(notes) == 1
    assert notes[0].startswith("btyd gave way:") and "repeat customers" in notes[0]
    with pytest.raises(RuntimeError, match="no servable model could be trained"):
        fit_champion(["btyd"], result.models, windows, 90, TrainingConfig(fast=True))


def test_tree_models_come_last_when_the_scored_customers_are_older_than_any_learned_from():
    from ml.pipeline import Fold, Windows, beyond_training, choose_order

    board = pd.DataFrame({"model": ["random_forest", "ensemble", "deep_ziln", "linear"],
                          "normalized_gini": [0.70, 0.69, 0.68, 0.66], "decile_mape": [0.1, 0.1, 0.1, 0.1]})
    names = list(board["model"])
    assert choose_order(board, names, 0.0, beyond=0.1) == names
    assert choose_order(board, names, 0.0, beyond=0.9) == ["deep_ziln", "linear", "random_forest", "ensemble"]
    young, old = shop_window(n=200, seed=1), shop_window(n=200, seed=2)
    old.features["tenure_days"] = young.features["tenure_days"].max() + 1 + np.arange(200) % 3
    assert beyond_training(Windows(score=old, production=young, folds=[Fold(young, young)])) == 1.0
    assert beyond_training(Windows(score=young, production=young, folds=[Fold(young, young)])) == 0.0


def test_the_default_zoo_leaves_out_only_the_costly_transformer():
    """training.models unset trains every member but deep_transformer (a tie with deep_ziln at ~13x its time)."""
    assert [n for n in MODEL_NAMES if n not in DEFAULT_MODELS] == ["deep_transformer"]
    assert with_dependencies(DEFAULT_MODELS) == list(DEFAULT_MODELS)  # the ensemble's members are all in it


def test_event_streams_are_built_only_for_a_zoo_or_champion_that_reads_them(tmp_path):
    """dbt's customer_events (every event at every cutoff: the heaviest model) is asked for max_events rows only
    when the transformer member trains, or is the champion that scores; else for none."""
    import json

    from ml.pipeline import event_stream_length

    assert zoo_registry.STREAM_READERS == ("deep_transformer",)
    assert event_stream_length(64, None) == 0  # the default zoo reads none
    assert event_stream_length(64, ["linear", "ensemble"]) == 0
    assert event_stream_length(64, ["linear", "deep_transformer"]) == 64
    champion = tmp_path / "model"
    champion.mkdir()
    (champion / "model.json").write_text(json.dumps({"name": "deep_transformer"}))
    assert event_stream_length(32, ["linear"], champion) == 32  # it keeps scoring until a challenger replaces it
    (champion / "model.json").write_text(json.dumps({"name": "gradient_boosting"}))
    assert event_stream_length(32, ["linear"], champion) == 0
    assert event_stream_length(32, ["linear"], tmp_path / "none") == 0


def test_a_big_window_learns_from_a_hashed_sample_of_its_customers_and_ranks_as_well():
    window = shop_window(n=6000, seed=5)
    sample = window.at_most(2000)
    assert len(sample) == 2000 and window.at_most(None) is window and window.at_most(6000) is window
    # chosen by id, not by row: a shuffled window gives the same customers; a smaller cap a subset of them
    shuffled = window.take(np.random.default_rng(0).permutation(len(window)))
    assert set(shuffled.at_most(2000).customer_ids) == set(sample.customer_ids)
    assert set(window.at_most(500).customer_ids) < set(sample.customer_ids)
    # every part of a row travels with it, in the window's order
    rows = pd.Index(window.customer_ids).get_indexer(sample.customer_ids)
    assert (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(sample.sequences, window.sequences[rows])
    np.testing.assert_array_equal(sample.y, window.y[rows])
    assert (sample.labels["customer_id"] == sample.features["customer_id"]).all()

    capped = fit_zoo(window, 90, TrainingConfig(fast=True, max_rows=2000), names=["gradient_boosting"])
    full = fit_zoo(window, 90, TrainingConfig(fast=True, max_rows=None), names=["gradient_boosting"])
    assert (capped.rows, capped.rows_available, full.rows) == (2000, 6000, 6000)
    assert capped.models["gradient_boosting"].info["train_rows"] == 2000
    holdout = shop_window(n=3000, seed=6)

    def gini(result):
        return normalized_gini(holdout.y, result.models["gradient_boosting"].predict(holdout.features, holdout.sequences)["predicted_value"])
    assert gini(capped) > gini(full) - 0.05, (gini(capped), gini(full))
    with pytest.raises(ValueError, match="training.max_rows is 0"):
        TrainingConfig(max_rows=0)


def test_the_backtests_holdout_predictions_are_kept_for_the_leaderboard(zoo, tmp_path):
    """model_evaluation judges the predictions backtest_model made on the holdout, not new ones; only those of
    these models on these customers, in this order."""
    from ml import pipeline
    _, result = zoo
    holdout = shop_window(n=800, seed=9)
    board, predictions = pipeline.evaluate_backtest(result.models, holdout)
    pipeline.save_holdout_predictions(predictions, holdout, tmp_path)
    kept = pipeline.read_holdout_predictions(tmp_path, list(result.models), holdout)
    assert kept is not None and set(kept) == set(result.models)
    again, _ = pipeline.evaluate_backtest(result.models, holdout, predictions=kept)
    pd.testing.assert_frame_equal(again, board)
    assert pipeline.read_holdout_predictions(tmp_path, list(result.models), holdout.take(np.arange(799, -1, -1))) is None
    assert pipeline.read_holdout_predictions(tmp_path, ["linear", "a_model_it_never_saw"], holdout) is None


def test_judging_a_zoo_predicts_each_member_once_and_the_ensemble_the_same(zoo, monkeypatch):
    """Inside shared_predictions the ensemble stacks its members' predictions made moments before instead of
    making them again; the numbers are those of separate passes, and a new window is predicted anew."""
    from ml.models import interface
    _, result = zoo
    holdout, other = shop_window(n=700, seed=11), shop_window(n=700, seed=12)
    alone = {name: m.predict(holdout.features, holdout.sequences, holdout.events) for name, m in result.models.items()}
    calls = []
    for name, member in result.models["ensemble"].members.items():
        monkeypatch.setattr(member, "predict_raw", lambda *a, _f=member.predict_raw, _n=name: calls.append(_n) or _f(*a))
    with interface.shared_predictions():
        shared = {name: m.predict(holdout.features, holdout.sequences, holdout.events)
                  for name, m in result.models.items()}
        other_ensemble = result.models["ensemble"].predict(other.features, other.sequences, other.events)
    members = list(result.models["ensemble"].members)
    assert sorted(calls) == sorted(members * 2)  # once on the holdout (shared with the ensemble), once on `other`
    for name in result.models:
        pd.testing.assert_frame_equal(shared[name], alone[name])
    pd.testing.assert_frame_equal(other_ensemble,
                                  result.models["ensemble"].predict(other.features, other.sequences, other.events))
    assert len(calls) == len(members) * 3  # outside the scope nothing is shared


def test_a_forest_samples_at_most_its_bootstrap_rows_and_predicts_a_big_batch_on_every_core(monkeypatch):
    from ml.models.zoo import hurdle, random_forest
    window, holdout = shop_window(n=6000, seed=5), shop_window(n=3000, seed=6)

    def forest():
        return fit_zoo(window, 90, TrainingConfig(fast=True), names=["random_forest"]).models["random_forest"]

    def gini(model):
        return normalized_gini(holdout.y, model.predict(holdout.features, holdout.sequences)["predicted_value"])
    full = forest()
    monkeypatch.setattr(random_forest, "BOOTSTRAP_ROWS", 600)
    capped = forest()
    drawn = {t.tree_.weighted_n_node_samples[0] for t in capped.classifier.estimators_}  # bootstrap draws per tree
    assert drawn == {600.0} and full.classifier.estimators_[0].tree_.weighted_n_node_samples[0] > 1500
    assert gini(capped) > gini(full) - 0.05, (gini(capped), gini(full))

    seen = []  # (thread, rows, n_jobs) of each predict_proba call
    proba = capped.classifier.predict_proba
    monkeypatch.setattr(capped.classifier, "predict_proba", lambda x: seen.append(
        (threading.get_ident(), len(x), capped.classifier.n_jobs)) or proba(x))
    serial = capped.predict(holdout.features, holdout.sequences)
    assert [(rows, jobs) for _, rows, jobs in seen] == [(3000, 1)]  # a request below PARALLEL_ROWS: one serial call
    monkeypatch.setattr(hurdle, "PARALLEL_ROWS", 1000)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)  # two cores, on any machine
    seen.clear()
    pooled = capped.predict(holdout.features, holdout.sequences)
    pd.testing.assert_frame_equal(pooled, serial)
    assert sorted(rows for _, rows, _ in seen) == [1500, 1500] and {jobs for *_, jobs in seen} == {1}
    assert threading.get_ident() not in {thread for thread, *_ in seen}  # split across worker threads
    assert capped.classifier.n_jobs == 1  # never changed: concurrent requests share the fitted estimator safely


def test_a_btyd_fit_that_stops_on_precision_loss_is_fitted_again_looser_and_says_nothing(capsys):
    import lifetimes
    from lifetimes import GammaGammaFitter
    from lifetimes.utils import ConvergenceError
    from ml.models.zoo.btyd import PENALIZER, converged

    cdnow = pd.read_csv(Path(lifetimes.__file__).parent / "datasets" / "cdnow_customers_summary_with_transactions.csv")
    repeat = cdnow[cdnow["x"] > 0]

    def fit(tol):
        return GammaGammaFitter(penalizer_coef=PENALIZER).fit(repeat["x"], repeat["zbar"], tol=tol)
    with pytest.raises(ConvergenceError):  # what 1e-7 did on the 1M benchmark shop, forced here by 1e-16
        fit(1e-16)
    capsys.readouterr()
    fitted = converged("Gamma-Gamma", fit, tolerances=(1e-16, 1e-5))
    pd.testing.assert_series_equal(fitted.params_, fit(1e-5).params_)
    assert capsys.readouterr().out == ""  # lifetimes' print of the failed optimisation is not the run's output
    with pytest.raises(ValueError, match=r"Gamma-Gamma did not converge \(tolerance down to 1e-16\)"):
        converged("Gamma-Gamma", fit, tolerances=(1e-16,))
