"""Plain-Python CLV logic: simulator, ingestion, models, metrics. Importable without Dagster."""
