"""Alternate worlds on Dagster: the re-roll and promotion jobs."""
