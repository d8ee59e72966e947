"""The scoring metrics against values computed by hand, with the definitions of shared/METRICS.md (the ZILN paper's):
sort customers by prediction, descending; gain curve g_k = cumsum(y)_k / sum(y); gini(p) = 2 * mean(g) - 1;
normalized Gini = gini(p) / gini(y)."""
from __future__ import annotations

import numpy as np
import pytest

from ml.evaluation.metrics import gain_curve, gini, normalized_gini

# five customers: what each spent in the horizon (D and E did not return) and a prediction with no ties
#                    A     B     C     D     E
Y = np.array([60.0, 30.0, 10.0, 0.0, 0.0])
P = np.array([0.9, 0.2, 0.5, 0.7, 0.1])


def test_normalized_gini_of_a_hand_computed_example():
    # by prediction, descending: A (0.9, y 60), D (0.7, y 0), C (0.5, y 10), B (0.2, y 30), E (0.1, y 0)
    #   cumsum(y) = 60, 60, 70, 100, 100; sum(y) = 100
    #   g = 0.6, 0.6, 0.7, 1.0, 1.0; mean(g) = 3.9 / 5 = 0.78; gini(p) = 2 * 0.78 - 1 = 0.56
    assert gain_curve(Y, P) == pytest.approx([0.6, 0.6, 0.7, 1.0, 1.0])
    assert gini(Y, P) == pytest.approx(0.56)
    # the perfect ranking (by y itself): A 60, B 30, C 10, D 0, E 0
    #   cumsum(y) = 60, 90, 100, 100, 100; g = 0.6, 0.9, 1.0, 1.0, 1.0; mean(g) = 4.5 / 5 = 0.9
    #   gini(y) = 2 * 0.9 - 1 = 0.8
    assert gini(Y, Y) == pytest.approx(0.8)
    # normalized Gini = 0.56 / 0.8 = 0.7
    # (not Kaggle's normalized Gini, (mean(g) - (n+1)/2n) / (mean(g*) - (n+1)/2n) = (0.78 - 0.6) / (0.9 - 0.6) = 0.6)
    assert normalized_gini(Y, P) == pytest.approx(0.7)


def test_the_perfect_ranking_is_one_whatever_the_scale_of_the_prediction():
    assert normalized_gini(Y, Y) == pytest.approx(1.0)
    assert normalized_gini(Y, 3 * Y + 7) == pytest.approx(1.0)  # only the order of the predictions counts
    assert normalized_gini(Y, np.array([5.0, 4.0, 3.0, 2.0, 1.0])) == pytest.approx(1.0)


def test_the_reversed_ranking_of_the_hand_computed_example():
    # by prediction, descending, when it ranks exactly backwards: E 0, D 0, C 10, B 30, A 60
    #   cumsum(y) = 0, 0, 10, 40, 100; g = 0, 0, 0.1, 0.4, 1.0; mean(g) = 1.5 / 5 = 0.3
    #   gini = 2 * 0.3 - 1 = -0.4; normalized = -0.4 / 0.8 = -0.5
    reversed_ranking = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert gini(Y, reversed_ranking) == pytest.approx(-0.4)
    assert normalized_gini(Y, reversed_ranking) == pytest.approx(-0.5)
    assert normalized_gini(Y, -Y) == pytest.approx(-0.5)


def test_the_reversed_ranking_tends_to_minus_one():
    """With this definition (the gain curve's last point is always 1) the reversed ranking is not exactly -1: its
    gain curve is g_rev_k = 1 - g*_(n-k), so mean(g_rev) = 1 + 1/n - mean(g*) and
    normalized = -1 + 2 / (n * gini(y)), which tends to -1 as the customers grow in number."""
    rng = np.random.default_rng(0)
    y = np.where(rng.random(2000) < 0.4, rng.lognormal(3, 1, 2000), 0.0)
    n = len(y)
    assert normalized_gini(y, -y) == pytest.approx(-1 + 2 / (n * gini(y, y)), rel=1e-9)
    assert normalized_gini(y, -y) == pytest.approx(-1, abs=0.002)
    assert normalized_gini(y, y) == pytest.approx(1.0)
