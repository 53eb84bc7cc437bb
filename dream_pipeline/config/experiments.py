"""Which books the loop runs: `experiments.yaml` (or DREAM_EXPERIMENTS), validated at start."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from resources.locations import PROJECT_ROOT
from spica import load_domain


def experiments_path() -> Path:
    return Path(os.environ.get("DREAM_EXPERIMENTS") or PROJECT_ROOT / "experiments.yaml")


def enabled_books(path: Path | None = None) -> tuple[str, ...]:
    """Enabled book names in file order; a clear error names the file and the bad entry."""
    path = path or experiments_path()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the experiments file {path}: {exc}") from None
    entries = document.get("experiments") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a top-level 'experiments:' list")
    books = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("book"), str):
            raise ValueError(f"{path}: experiment #{i + 1} needs a 'book:' name")
        unknown = set(entry) - {"book", "enabled"}
        if unknown:
            raise ValueError(f"{path}: experiment {entry['book']!r} has unknown keys {sorted(unknown)}")
        if entry.get("enabled", True):
            load_domain(entry["book"])  # only a registered SPICA domain runs; a clear error otherwise
            books.append(entry["book"])
    if not books:
        raise ValueError(f"{path}: no experiment is enabled")
    return tuple(books)
