"""Jobs: the whole flow, and retraining (the training set and everything downstream of it)."""
import dagster as dg

from orchestration.assets.modeling import training_set

all_assets_job = dg.define_asset_job("refresh_all", selection=dg.AssetSelection.all())
retrain_job = dg.define_asset_job("retrain", selection=dg.AssetSelection.assets(training_set).downstream())
