"""deep_transformer, the zoo member over each customer's event stream: it learns from the stream what the features
lack, padding changes nothing, no events is no NaN, it round-trips with its streams, and trains on 2 processes."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from ml.data.windows import EVENT_CHANNELS, EVENT_TYPES, Window, read_window, save_window
from ml.evaluation.metrics import normalized_gini
from ml.models.network import ClvNet, NetConfig
from ml.models.preprocess import EVENT_VALUES, N_EVENT_TYPES, transform_events
from ml.models.search import base_config
from ml.models.training import TrainConfig, train_network
from ml.models.zoo import load_model
from ml.models.zoo.deep_transformer import DeepTransformer
from tests.test_zoo import shop_window

MAX_EVENTS = 16


def event_window(n: int = 1200, seed: int = 0) -> Window:
    """A shop window whose features say nothing of the future (shuffled across customers) while each customer's
    event stream carries their hidden rate: how many events, how recent, how many orders and of what size."""
    window = shop_window(n, seed)
    rng = np.random.default_rng(seed + 1)
    rate = rng.gamma(0.8, 1.0, n)
    events = np.zeros((n, MAX_EVENTS, len(EVENT_CHANNELS)), dtype=np.float32)
    for i, k in enumerate(np.minimum(rng.poisson(rate * 6), MAX_EVENTS)):
        if not k:
            continue
        before = np.sort(rng.exponential(60 / (rate[i] + 0.1), k)).round()  # newest first
        kinds = np.where(rng.uniform(size=k) < 0.3, 1, rng.integers(2, len(EVENT_TYPES) + 1, k))
        gaps = np.append(np.diff(before), np.nan)  # the oldest has no previous event
        amount = np.where(kinds == 1, rng.gamma(4.0, 10.0 * (1 + rate[i]), k), 0.0)
        events[i, :k] = np.column_stack([kinds, gaps, before, amount])
    returned = rng.uniform(size=n) < 1 - np.exp(-rate)
    value = np.where(returned, rng.lognormal(np.log(30 * (1 + rate)), 0.5), 0.0)
    features = window.features.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    features["customer_id"] = window.features["customer_id"]
    labels = pd.DataFrame({"customer_id": features["customer_id"], "future_value": value,
                           "future_orders": returned.astype(int), "returned": returned})
    return Window(window.cutoff, features, window.sequences, window.lifecycle, labels, 90, events)


FAST = replace(base_config(600, fast=True), max_epochs=8, patience=4, cpu_threads=2)


@pytest.fixture(scope="module")
def trained():
    train, test = event_window(600, seed=0), event_window(600, seed=10)
    return train, test, DeepTransformer.train(train, FAST)


def test_it_learns_from_the_stream_what_the_features_lack(trained):
    train, test, model = trained
    gini = normalized_gini(test.y, model.predict(test.features, test.sequences, test.events)["predicted_value"])
    baseline = normalized_gini(test.y, test.features["total_spend"].to_numpy(dtype=float))  # historic spend
    blind = normalized_gini(test.y, model.predict(test.features, test.sequences)["predicted_value"])
    assert gini > 0.3 and gini > baseline + 0.2, (gini, baseline)  # seen: 0.58 and -0.03
    assert abs(blind) < 0.2  # without its streams (empty) it has only the uninformative features
    assert model.info["config"]["encoder"] == "transformer" and model.net.cfg.max_events == MAX_EVENTS


def net(max_events: int = 8) -> ClvNet:
    torch.manual_seed(0)
    cfg = NetConfig(n_numeric=3, cardinalities=[3], n_seq_channels=0, hidden=16, seq_hidden=16, encoder="transformer",
                    max_events=max_events, n_event_types=N_EVENT_TYPES, n_event_values=len(EVENT_VALUES))
    return ClvNet(cfg).eval()


@torch.no_grad()
def test_padding_changes_nothing_and_no_events_is_no_nan():
    model, rng = net(16), np.random.default_rng(0)
    numeric, cats = torch.randn(4, 3), torch.tensor([[1], [2], [0], [1]])
    types = torch.zeros(4, 8, dtype=torch.long)
    for row, k in enumerate([5, 8, 1, 0]):  # the last customer has no events at all
        types[row, :k] = torch.from_numpy(rng.integers(1, N_EVENT_TYPES, k))
    values = torch.rand(4, 8, len(EVENT_VALUES)) * (types > 0).unsqueeze(-1)
    out = model(numeric, cats, torch.zeros(4, 1, 0), types, values)
    assert torch.isfinite(out).all()
    # twice as long, the extra slots padding with garbage numbers in them (and in the old padding slots)
    longer_types = torch.cat([types, torch.zeros(4, 8, dtype=torch.long)], dim=1)
    garbage = torch.rand(4, 16, len(EVENT_VALUES)) * 100 * (longer_types == 0).unsqueeze(-1)
    longer_values = torch.cat([values, torch.zeros(4, 8, len(EVENT_VALUES))], dim=1) + garbage
    torch.testing.assert_close(model(numeric, cats, torch.zeros(4, 1, 0), longer_types, longer_values), out)
    # and the stream does matter where there is one
    values[0, 0] += 1.0
    assert not torch.allclose(model(numeric, cats, torch.zeros(4, 1, 0), types, values)[0], out[0])


def test_streams_are_cut_to_the_newest_and_padded():
    events = event_window(50).events
    types, values = transform_events(events, 4)
    assert types.shape == (50, 4) and values.shape == (50, 4, len(EVENT_VALUES))
    np.testing.assert_array_equal(types, events[:, :4, 0].astype(int))
    longer_types, longer_values = transform_events(events, 40)
    np.testing.assert_array_equal(longer_types[:, :16], events[:, :, 0].astype(int))
    assert (longer_types[:, 16:] == 0).all() and (longer_values[:, 16:] == 0).all()
    first = (events[:, :, 0] > 0) & np.isnan(events[:, :, 1])
    np.testing.assert_array_equal(longer_values[:, :16, 3], first)  # is_first, and its gap reads as 0
    assert np.isfinite(longer_values).all()


def test_the_window_and_the_model_round_trip_with_their_streams(trained, tmp_path):
    _, test, model = trained
    save_window(test, tmp_path / "window")
    again = read_window(tmp_path / "window")
    np.testing.assert_array_equal(again.events, test.events)
    (tmp_path / "window" / "events.npy").unlink()  # a window saved before streams existed: empty streams
    assert read_window(tmp_path / "window").events.shape == (len(test), 0, len(EVENT_CHANNELS))
    loaded = load_model(model.save(tmp_path / "model"))
    assert isinstance(loaded, DeepTransformer)
    pd.testing.assert_frame_equal(loaded.predict(test.features, test.sequences, test.events),
                                  model.predict(test.features, test.sequences, test.events), rtol=1e-5)


def test_two_processes_train_it_as_one():
    window = event_window(300, seed=5)
    cfg = TrainConfig(hidden=16, seq_hidden=16, dropout=0.0, batch_size=64, max_epochs=2, patience=2,
                      cpu_threads=1, encoder="transformer")
    one = train_network(window, cfg)
    two = train_network(window, replace(cfg, processes=2))
    assert two.info["distributed"]["processes"] == 2 and two.net.cfg.encoder == "transformer"
    assert two.info["best_val_loss"] == pytest.approx(one.info["best_val_loss"], rel=1e-4)


def test_feature_rows_with_events_reach_the_served_transformer(trained):
    """/predict_features: a row's event list is the stream the model reads (the dense layout of the mart's), and
    the batch path (with reasons) gives the same predictions as the model in process."""
    from serving import batch, features
    from serving.schemas import CustomerFeatures, Event

    _, test, model = trained
    rows = []
    for i in range(5):
        stream = [Event(event_type=EVENT_TYPES[int(e[0]) - 1], days_before_cutoff=int(e[2]), amount=float(e[3]),
                        days_since_previous=None if np.isnan(e[1]) else int(e[1]))
                  for e in test.events[i] if e[0] > 0]
        rows.append(CustomerFeatures(n_orders=1, total_spend=10.0, tenure_days=50, events=stream or None))
    dense = features.events(rows)
    np.testing.assert_array_equal(dense, test.events[:5, :dense.shape[1]])
    frame, seqs = features.frame(rows), features.sequences(rows, test.sequences.shape[1])
    pred, reasons = batch.predict(model, frame, seqs, np.arange(2), 3, dense)
    pd.testing.assert_frame_equal(pred, model.predict(frame, seqs, dense))
    assert reasons[0] is not None and reasons[4] is None
    blind = model.predict(frame, seqs)  # without events: every stream empty
    assert not np.allclose(blind["predicted_value"], pred["predicted_value"])
