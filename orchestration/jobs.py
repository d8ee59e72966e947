"""Jobs: ingestion alone; the whole flow; rescoring (new data, the champion as it is); retraining (the zoo, the
champion decision, and everything downstream). All but ingestion run for one cutoff (a partition)."""
import dagster as dg

from orchestration.assets.ingestion import shop_exports
from orchestration.assets.modeling import backtest_model, clv_model, model_evaluation, training_set
from orchestration.partitions import CUTOFFS

TRAINING = dg.AssetSelection.assets(backtest_model, model_evaluation, clv_model)
INGESTION = dg.AssetSelection.assets(shop_exports).downstream(depth=1)

ingest_job = dg.define_asset_job(
    "ingest", selection=INGESTION, description="New export files into the warehouse's raw tables.")
all_assets_job = dg.define_asset_job("refresh_all", selection=dg.AssetSelection.all(), partitions_def=CUTOFFS)
rescore_job = dg.define_asset_job(
    "rescore", selection=dg.AssetSelection.all() - TRAINING, partitions_def=CUTOFFS,
    description="Ingest new data, rebuild features, score every customer with the champion, monitor, publish.")
retrain_job = dg.define_asset_job(
    "retrain", selection=dg.AssetSelection.assets(training_set).downstream(), partitions_def=CUTOFFS,
    description="Train the zoo out of time, decide champion vs challenger, rescore, monitor, publish.")
