"""Sensors: one concern a module (drift -> retraining; new files in the incoming folder -> ingestion)."""
