"""Whether the served model still holds: feature and prediction drift (drift) and the performance of earlier
scores once their horizon has matured (performance), as Evidently reports and dashboards.

May import: ml.evaluation, ml.models, ml.data, ml.settings."""
