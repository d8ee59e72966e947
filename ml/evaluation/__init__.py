"""How well the models predict: the metrics of shared/METRICS.md (metrics), the leaderboard and its choice
(leaderboard), plots, explanations a marketer reads (explain), the simulator's oracle (oracle) and the CDNOW
comparison with lifetimes (cdnow).

May import: ml.models, ml.data, ml.settings."""
