"""The shop's data, up to the feature windows the models read: the built-in simulator and the real-export shapes
(simulator, shapes, dirt), ingestion of exports into DuckDB with the money accounted (ingest, accounting), the
cutoff plan and the dbt build (plan, build), and the windows read back from the marts (windows).

May import: ml.settings. Nothing here knows of models."""
