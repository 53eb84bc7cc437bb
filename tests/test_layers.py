"""Layers: the pure record types import nothing that does I/O, and the fabric imports no pipeline module
but the records (the layout in README.md's architecture section).

Each probe imports a module in a fresh interpreter and lists what got loaded, so an import anywhere down
the chain (`import psycopg` added to records.py, or to a module it imports) fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what does I/O, or drags in what does: none of it may load with a pure module
IO_MODULES = ("dagster", "psycopg", "pgvector", "openai", "httpx", "streamlit", "resources")


def loaded_by(module: str) -> set[str]:
    """Every module a fresh interpreter has loaded after importing `module`."""
    out = subprocess.run(
        [sys.executable, "-c", f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return set(json.loads(out))


def io_loaded(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in IO_MODULES)


def test_records_import_nothing_that_does_io():
    loaded = loaded_by("dream_pipeline.records")
    assert io_loaded(loaded) == []
    # and nothing else of the pipeline: records sit below every other layer
    assert sorted(m for m in loaded if m.startswith("dream_pipeline")) == ["dream_pipeline", "dream_pipeline.records"]


def test_the_io_probe_sees_an_io_import():
    """The probe is not blind: the fabric itself (psycopg, dagster) is caught by the same check."""
    assert {"dagster", "psycopg", "resources.fabric"} <= set(io_loaded(loaded_by("resources.fabric")))


def test_the_pure_modules_take_their_row_types_from_records():
    """The pure text and statistics modules read rows without loading the fabric (issue 14)."""
    for module in ("dream_pipeline.domains.book.prompts", "dream_pipeline.epoch.rating_window", "dream_pipeline.epoch.vote_matrix",
                   "dream_pipeline.cli.report"):
        assert io_loaded(loaded_by(module)) == [], module


def test_the_fabric_imports_no_pipeline_module_but_the_records():
    """resources/ sits below the pipeline: of dream_pipeline it loads the records, and `canon` (pure: the
    fingerprint the Reaper stores in its commit, until it moves beside the records), nothing else."""
    pipeline = {m for m in loaded_by("resources.fabric") if m.startswith("dream_pipeline")}
    [canon] = [m for m in pipeline if m.endswith(".canon")]  # wherever the layout puts it
    packages = {canon.rsplit(".", n)[0] for n in range(1, canon.count("."))}
    assert pipeline == {"dream_pipeline", "dream_pipeline.records", canon, *packages}
