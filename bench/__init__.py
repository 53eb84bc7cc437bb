"""Benchmarks: each runs as `python -m bench.NAME` (fast by default, `--full` for the long run),
prints a readable table and ends with one `RESULT {...}` line of its figures as JSON."""
