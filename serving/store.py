"""The served model in the BentoML model store: the network, its preprocessing and the scoring snapshot.

A published version holds `model/` (ClvModel files) and `snapshot/` (the features of every customer at the scoring
cutoff), so the API answers for known customers exactly as the model computes in process.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

import bentoml  # noqa: E402

from ml.model import ClvModel  # noqa: E402
from ml.windows import Window, read_window, save_window  # noqa: E402

MODEL_NAME = "clv_model"


@dataclass
class Served:
    tag: str
    model: ClvModel
    snapshot: Window

    @property
    def version(self) -> str:
        return self.tag.split(":", 1)[1]


def publish(model_dir: str | Path, snapshot: Window, metadata: dict | None = None) -> str:
    """Save a trained model and the scoring snapshot as a new version of `clv_model`; return its tag."""
    info = ClvModel.load(model_dir).info
    labels = {"train_cutoff": str(info.get("train_cutoff")), "scoring_cutoff": str(snapshot.cutoff)}
    with bentoml.models.create(MODEL_NAME, labels=labels, metadata=metadata or {}) as bento_model:
        shutil.copytree(model_dir, Path(bento_model.path) / "model")
        save_window(snapshot, Path(bento_model.path) / "snapshot")
    return str(bento_model.tag)


def latest_tag() -> str | None:
    try:
        return str(bentoml.models.get(f"{MODEL_NAME}:latest").tag)
    except bentoml.exceptions.NotFound:
        return None


def load(tag: str = f"{MODEL_NAME}:latest") -> Served:
    stored = bentoml.models.get(tag)
    root = Path(stored.path)
    return Served(str(stored.tag), ClvModel.load(root / "model"), read_window(root / "snapshot"))
