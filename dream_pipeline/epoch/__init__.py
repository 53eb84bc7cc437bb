"""The use cases of one epoch, without Dagster: scope, burst, vote, rank, collapse, reaper, worlds, replay."""
