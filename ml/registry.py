"""Model versions and the champion: every trained version is kept with its backtest metrics; a challenger replaces
the champion only if it beats it on the backtest by a margin (clv.yaml `training.promotion_margin`).

Layout under CLV_HOME/models/registry/:
    <version>/model/        the production model (trained at t - H, calibrated): what scores and is served
    <version>/backtest/     the same recipe trained at t - 2H: what the backtest judged
    <version>/metrics.json  zoo name, cutoffs, backtest metrics, hyperparameters, promotion decision
    champion                the champion's version (one line)

The comparison is on the current backtest window: the champion's backtest model is scored again on the holdout the
challenger was judged on, when that window is out of time for it (its labels ended by the holdout cutoff);
otherwise its recorded Gini is used. A champion that cannot score the current features at all (another shop, a
changed feature set) cannot be compared: the challenger takes over. The decision says which basis it used.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from ml import settings
from ml.evaluation.metrics import normalized_gini
from ml.models.interface import ClvModel
from ml.models.zoo import load_model
from ml.data.windows import Window

METRIC = "normalized_gini"


def registry_dir() -> Path:
    return settings.models_dir() / "registry"


def versions() -> list[dict]:
    """Every registered version's record, oldest first."""
    root = registry_dir()
    records = [json.loads(p.read_text()) for p in root.glob("*/metrics.json")] if root.exists() else []
    return sorted(records, key=lambda r: r["created"])


def record(version: str) -> dict:
    return json.loads((registry_dir() / version / "metrics.json").read_text())


def champion_version() -> str | None:
    pointer = registry_dir() / "champion"
    return pointer.read_text().strip() if pointer.exists() else None


def champion_dir() -> Path | None:
    """The champion's production model folder (ml.models.zoo.load_model reads it): what to score with and to publish."""
    version = champion_version()
    return registry_dir() / version / "model" if version else None


def new_version(name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    return f"{stamp}-{name}"


def register(version: str, production: ClvModel, backtest: ClvModel, entry: dict) -> Path:
    """Keep a version: both models and its record (entry: model, as_of, holdout_cutoff, metrics, ...)."""
    folder = registry_dir() / version
    production.info.update(model_id=version, backtest_normalized_gini=entry["metrics"].get(METRIC))
    production.save(folder / "model")
    backtest.save(folder / "backtest")
    entry = {"version": version, "created": datetime.now(timezone.utc).isoformat(), "promoted": False, **entry}
    (folder / "metrics.json").write_text(json.dumps(entry, indent=1, default=_plain))
    return folder


@dataclass
class Decision:
    promote: bool
    reason: str
    challenger: str
    challenger_gini: float
    champion: str | None = None
    champion_gini: float | None = None
    basis: str = "none"  # "rescored" on the current holdout, "recorded" (its own backtest), "incompatible", "none"

    def to_dict(self) -> dict:
        return asdict(self)


def decide(version: str, holdout: Window, horizon_days: int, margin: float) -> Decision:
    """Champion / challenger on the backtest: promote when challenger Gini >= champion Gini + margin."""
    challenger = record(version)
    gini = float(challenger["metrics"][METRIC])
    current = champion_version()
    if current is None or not (registry_dir() / current).exists():
        return Decision(True, "no champion yet", version, gini)
    champ_gini, basis = _champion_gini(current, holdout, horizon_days)
    if champ_gini is None:
        return Decision(True, f"the champion {current} cannot score this backtest (its features are gone): "
                              "the challenger takes over", version, gini, current, None, basis)
    better = gini >= champ_gini + margin
    reason = (f"challenger Gini {gini:.4f} {'>=' if better else '<'} champion {champ_gini:.4f} + margin {margin}"
              f" ({basis})")
    return Decision(better, reason, version, gini, current, champ_gini, basis)


def promote(version: str, decision: Decision) -> None:
    """Record the decision in the version's metrics.json; move the champion pointer when it is a promotion."""
    path = registry_dir() / version / "metrics.json"
    entry = json.loads(path.read_text())
    entry.update(promoted=decision.promote, decision=decision.to_dict())
    path.write_text(json.dumps(entry, indent=1, default=_plain))
    if decision.promote:
        (registry_dir() / "champion").write_text(version + "\n")


def publish_champion(target: Path) -> Path:
    """Copy the champion's production model to `target` (replacing it): the folder that scores and serves."""
    source = champion_dir()
    if source is None:
        raise FileNotFoundError("no champion model: run the training first")
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _champion_gini(version: str, holdout: Window, horizon_days: int) -> tuple[float | None, str]:
    entry = record(version)
    recorded = float(entry["metrics"][METRIC])
    if holdout.labels is None:
        return recorded, "recorded"
    trained = date.fromisoformat(str(entry.get("backtest_cutoff")))
    if trained + timedelta(days=horizon_days) > holdout.cutoff:  # it saw labels inside this holdout's window
        return recorded, "recorded"
    try:
        model = load_model(registry_dir() / version / "backtest")
        pred = model.predict(holdout.features, holdout.sequences, holdout.events)["predicted_value"].to_numpy()
    except (ValueError, KeyError, FileNotFoundError):  # the features it needs are gone (another shop, new columns)
        return None, "incompatible"
    return float(normalized_gini(holdout.y, pred)), "rescored"


def _plain(value):
    try:
        return value.item()
    except AttributeError:
        return str(value)
