"""Plain-Python CLV logic, importable without Dagster. Stages, each importing only the ones before it (the
contract in pyproject.toml, checked by tests/test_layers.py):

    settings, lock   clv.yaml and the workspace's one-writer lock
    data/            the shop's data up to the feature windows: simulate, ingest, plan the cutoffs, build with dbt
    models/          what predicts: the model interface, the zoo, the network and its loss, training, search
    evaluation/      how well it predicts: metrics, the leaderboard, plots, explanations, real-shop comparisons
    monitoring/      whether it still does: drift and matured performance (Evidently)
    registry         which model is the champion, and its history
    pipeline, cli    the modelling steps the Dagster assets and `clv predict` call
"""
