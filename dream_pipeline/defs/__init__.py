"""Dagster only, one folder per concern: epoch/ (assets, checks, jobs), loop/, phase/, worlds/."""
