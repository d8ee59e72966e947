"""Reasons per customer and global importance: the mechanics, checked where the answer is known."""
from __future__ import annotations

import numpy as np
import pytest

from ml.evaluation.explain import (SEQUENCE_FEATURE, explain, feature_groups, group_effects,
                                   permutation_importance)
from ml.settings import TrainingConfig
from ml.models.zoo import fit_zoo
from tests.test_zoo import shop_window


@pytest.fixture(scope="module")
def models():
    window = shop_window(n=1200, seed=5)
    result = fit_zoo(window, 90, TrainingConfig(fast=True), names=["historic_spend_rate", "deep_ziln"])
    return window, result.models


def test_a_typical_customer_has_nothing_that_moves_them(models):
    window, zoo = models
    model = zoo["deep_ziln"]
    row = window.features.iloc[:1].copy()
    for col in model.prep.numeric + list(model.prep.categorical):
        row[col] = model.prep.typical(col)
    seq = np.asarray(model.prep.seq_mean, dtype=np.float32)[None]
    reasons = explain(model, row, seq, top_k=20)[0]
    assert len(reasons) == len(feature_groups(model)) + 1  # every group and the weekly activity
    assert max(abs(r.effect) for r in reasons) < 1e-6


def test_reasons_are_ordered_words_with_the_serving_contract(models):
    window, zoo = models
    reasons = explain(zoo["deep_ziln"], window.features.iloc[:50], window.sequences[:50], top_k=3)
    assert len(reasons) == 50 and all(len(r) == 3 for r in reasons)
    for row in reasons:
        effects = [abs(r.effect) for r in row]
        assert effects == sorted(effects, reverse=True)
        for r in row:
            assert r.value is None or isinstance(r.value, float)
            assert ("raises" if r.effect > 0 else "lowers") in r.text and "expected value by" in r.text
            assert r.feature == SEQUENCE_FEATURE or r.feature in feature_groups(zoo["deep_ziln"])


def test_reused_sequence_encodings_leave_every_effect_as_a_whole_prediction_has_it(models):
    """group_effects encodes the weekly activity once for all groups: each effect is still the full model's."""
    window, zoo = models
    model = zoo["deep_ziln"]
    features, sequences = window.features.iloc[:300].reset_index(drop=True), window.sequences[:300]
    names, reused = group_effects(model, features, sequences)[1:]
    anew = group_effects(model, features, sequences, reuse=False)[2]
    assert SEQUENCE_FEATURE in names and np.abs(anew).max() > 0
    np.testing.assert_allclose(reused, anew, rtol=1e-5, atol=1e-6)
    # what "anew" means: one whole prediction per variant
    value = lambda f, s: model.predict(f, s.copy())["predicted_value"].to_numpy()  # a copy: a new array
    seq_typical = np.broadcast_to(np.asarray(model.prep.seq_mean, dtype=sequences.dtype), sequences.shape)
    j = names.index(SEQUENCE_FEATURE)
    np.testing.assert_allclose(anew[:, j], value(features, sequences) - value(features, seq_typical), rtol=1e-5, atol=1e-6)
    assert len(model.predict(features.iloc[:0], sequences[:0])) == 0  # no rows: nothing to encode


def test_a_big_spender_is_told_their_spend_raises_the_value(models):
    window, zoo = models
    model = zoo["historic_spend_rate"]  # value = spend per day of tenure x horizon: the answer is known
    row = window.features.iloc[:1].copy()
    row["total_spend"] = 50 * model.prep.typical("total_spend")
    top = explain(model, row, window.sequences[:1], top_k=1)[0][0]
    assert top.feature == "spend" and top.effect > 0 and top.text.startswith("Total spend")


def test_importance_is_zero_for_what_a_model_ignores(models):
    window, zoo = models
    importance = permutation_importance(zoo["historic_spend_rate"], window.features, window.sequences, window.y)
    assert importance["site_activity"] == 0.0 and importance["profile"] == 0.0
    assert importance["spend"] > 0.05
