"""Jobs: the whole flow; rescoring (new data, the champion as it is); retraining (the zoo, the champion decision,
and everything downstream)."""
import dagster as dg

from orchestration.assets.modeling import backtest_model, clv_model, model_evaluation, training_set

TRAINING = dg.AssetSelection.assets(backtest_model, model_evaluation, clv_model)

all_assets_job = dg.define_asset_job("refresh_all", selection=dg.AssetSelection.all())
rescore_job = dg.define_asset_job(
    "rescore", selection=dg.AssetSelection.all() - TRAINING,
    description="Ingest new data, rebuild features, score every customer with the champion, monitor, publish.")
retrain_job = dg.define_asset_job(
    "retrain", selection=dg.AssetSelection.assets(training_set).downstream(),
    description="Train the zoo out of time, decide champion vs challenger, rescore, monitor, publish.")
