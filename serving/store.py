"""The served model in the BentoML model store: the network, its preprocessing, the scoring snapshot and its answers.

A published version holds `model/` (ClvModel files), `snapshot/` (the features of every customer at the scoring
cutoff) and `scores.parquet` (the model's answer and reasons for each of them, computed once: by the customer_scores
asset, else at publish), so the API answers for known customers exactly as the model computes in process, without
running it per request.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

import bentoml  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from ml.models.interface import ClvModel  # noqa: E402
from ml.models.zoo import load_model  # noqa: E402
from ml.data.windows import Window, read_window, save_window  # noqa: E402
from serving import scores  # noqa: E402

MODEL_NAME = "clv_model"


@dataclass
class Served:
    tag: str
    model: ClvModel
    snapshot: Window
    path: Path  # the version's folder in the model store

    @property
    def version(self) -> str:
        return self.tag.split(":", 1)[1]


def publish(model_dir: str | Path, snapshot: Window, metadata: dict | None = None,
            scored: pd.DataFrame | None = None) -> str:
    """Save a trained model, the scoring snapshot and its answers as a new version of `clv_model`; return its tag.
    `scored`: the customer_scores asset's frame (ml.pipeline.score_frame), used for the answers when it is this
    model's on this snapshot's customers, in order; else they are computed here (the label `answers` says which)."""
    model = load_model(model_dir)
    info = model.info
    labels = {"train_cutoff": str(info.get("train_cutoff")), "scoring_cutoff": str(snapshot.cutoff),
              "model_id": str(info.get("model_id", "")), "workspace": _workspace()}
    if scored is not None and scored_by(scored, labels["model_id"], snapshot) and agrees(model, snapshot, scored):
        answers, labels["answers"] = scores.answers_of(scored), "customer_scores"
    else:
        with single_threaded_torch():
            answers, labels["answers"] = scores.score(model, snapshot), "publish"
    with bentoml.models.create(MODEL_NAME, labels=labels, metadata=metadata or {}) as bento_model:
        shutil.copytree(model_dir, Path(bento_model.path) / "model")
        save_window(snapshot, Path(bento_model.path) / "snapshot")
        scores.save(answers, bento_model.path)
    return str(bento_model.tag)


def answers_from(tag: str) -> str:
    """Where a version's answers were computed: "customer_scores" (that asset's, reused) or "publish"."""
    return bentoml.models.get(tag).info.labels.get("answers", "publish")


def scored_by(scored: pd.DataFrame, model_id: str, snapshot: Window) -> bool:
    """`scored` holds model `model_id`'s answers for exactly the snapshot's customers at its cutoff, in its order."""
    return (model_id != "" and "reason_details" in scored and len(scored) == len(snapshot)
            and set(scored["model_version"].astype(str)) <= {model_id}
            and set(pd.to_datetime(scored["cutoff_date"]).dt.date) <= {snapshot.cutoff}
            and np.array_equal(scored["customer_id"].astype(str).to_numpy(), snapshot.customer_ids.astype(str)))


def agrees(model: ClvModel, snapshot: Window, scored: pd.DataFrame, rows: int = 256) -> bool:
    """The model, run on rows spread over the snapshot, gives `scored`'s expected values (to float noise): the
    answers were computed from these features, not from an earlier build of the same cutoff."""
    at = np.unique(np.linspace(0, len(snapshot) - 1, num=min(rows, len(snapshot))).astype(int))
    with single_threaded_torch():
        now = model.predict(snapshot.features.iloc[at], snapshot.sequences[at], snapshot.events[at])
    return np.allclose(now["predicted_value"].to_numpy(float), scored["predicted_value"].to_numpy(float)[at],
                       rtol=1e-5, atol=1e-6)


def same_snapshot(a: Window, b: Window) -> bool:
    """The same customers with the same features, weekly activity and event streams, to float noise: DuckDB's
    parallel float sums may differ in the last bits when the same cutoff is rebuilt from the same data."""
    fa, fb = a.features, b.features
    if a.cutoff != b.cutoff or list(fa.columns) != list(fb.columns) or not fa.index.equals(fb.index):
        return False
    floats = fa.select_dtypes("floating").columns
    close = all(np.allclose(fa[c].to_numpy(float), fb[c].to_numpy(float), rtol=1e-9, atol=1e-9, equal_nan=True)
                for c in floats)
    rest = [c for c in fa.columns if c not in floats]
    return (close and fa[rest].equals(fb[rest]) and np.array_equal(a.sequences, b.sequences)
            and np.array_equal(a.events, b.events, equal_nan=True))


def why_not_publish(model_dir: str | Path, snapshot: Window) -> str | None:
    """Why publishing this model with this snapshot would change nothing the API serves, or None to publish: this
    workspace's last version has the same model on the same snapshot, or a later cutoff (a backfill of the past)."""
    try:
        stored = bentoml.models.list(MODEL_NAME)
    except bentoml.exceptions.NotFound:
        return None
    mine = [m for m in stored if m.info.labels.get("workspace") == _workspace()]
    if not mine:
        return None
    last = max(mine, key=lambda m: m.info.creation_time)
    tag, labels = str(last.tag), last.info.labels
    served_cutoff = labels.get("scoring_cutoff", "")
    if served_cutoff > str(snapshot.cutoff):
        return f"a later cutoff ({served_cutoff}) is served; {snapshot.cutoff} is kept in customer_scores"
    model_id = str(load_model(model_dir).info.get("model_id", ""))
    if (served_cutoff == str(snapshot.cutoff) and labels.get("model_id") == model_id
            and same_snapshot(read_window(Path(last.path) / "snapshot"), snapshot)):
        return f"{tag} serves this model ({model_id}) on this snapshot already"
    return None


def _workspace() -> str:
    """The platform workspace publishing (one BentoML store may hold several, as in the tests)."""
    from ml import settings

    return hashlib.sha256(str(settings.clv_home()).encode()).hexdigest()[:12]


def latest_tag() -> str | None:
    try:
        return str(bentoml.models.get(f"{MODEL_NAME}:latest").tag)
    except bentoml.exceptions.NotFound:
        return None


def latest_version(served: Served | None) -> str | None:
    """The version `clv_model:latest` names now. Cheap once a version is loaded: one small file read."""
    if served is not None:
        try:
            return (served.path.parent / "latest").read_text().strip() or None
        except OSError:
            pass
    tag = latest_tag()
    return tag.split(":", 1)[1] if tag else None


def load(tag: str = f"{MODEL_NAME}:latest") -> Served:
    """A stored version, its network on the CPU: requests bring a few rows, where a GPU round trip costs more than
    it saves, and the snapshot's answers were computed at publish."""
    stored = bentoml.models.get(tag)
    root = Path(stored.path)
    return Served(str(stored.tag), load_model(root / "model"), read_window(root / "snapshot"), root)


class single_threaded_torch:
    """Run torch on one thread: on a small box shared with other work, torch's thread pool spins against the other
    processes (a 4,000-row forward pass took 2.1 s on two threads, 55 ms on one)."""

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)
