"""Which experiments the loop runs: `experiments.yaml` (or DREAM_EXPERIMENTS), validated at start.

An experiment names a domain (a folder under dream_pipeline/domains/), the instance of it to run (a book's
manifest name), whether it is enabled, and how many epochs it runs before the loop turns to the next one:

    - domain: book
      name: space_time
      enabled: true
      epochs_per_cycle: 1

The older form `- book: space_time` still reads (a book experiment, one epoch per cycle).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from dream_pipeline.domains import load_domain
from resources.locations import PROJECT_ROOT

KEYS = {"domain", "name", "book", "enabled", "epochs_per_cycle"}


@dataclass(frozen=True)
class Experiment:
    """One enabled experiment: its domain family, the instance's name, its epochs per turn of the loop."""

    domain: str
    name: str
    epochs_per_cycle: int = 1


def experiments_path() -> Path:
    return Path(os.environ.get("DREAM_EXPERIMENTS") or PROJECT_ROOT / "experiments.yaml")


def _experiment(entry: object, number: int, path: Path) -> tuple[Experiment, bool]:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: experiment #{number} needs a 'domain:' and a 'name:' (or a 'book:' name)")
    if "book" in entry:
        if "domain" in entry or "name" in entry:
            raise ValueError(f"{path}: experiment #{number} gives 'book:' and 'domain:'/'name:'; use one form")
        domain, name = "book", entry["book"]
    else:
        domain, name = entry.get("domain"), entry.get("name")
    if not isinstance(name, str) or not isinstance(domain, str):
        raise ValueError(f"{path}: experiment #{number} needs a 'domain:' and a 'name:' (or a 'book:' name)")
    unknown = set(entry) - KEYS
    if unknown:
        raise ValueError(f"{path}: experiment {name!r} has unknown keys {sorted(unknown)}")
    per_cycle = entry.get("epochs_per_cycle", 1)
    if isinstance(per_cycle, bool) or not isinstance(per_cycle, int) or per_cycle < 1:
        raise ValueError(f"{path}: experiment {name!r}: epochs_per_cycle must be a whole number >= 1, "
                         f"got {per_cycle!r}")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError(f"{path}: experiment {name!r}: enabled must be true or false, got {enabled!r}")
    return Experiment(domain, name, per_cycle), enabled


def enabled_experiments(path: Path | None = None) -> tuple[Experiment, ...]:
    """Enabled experiments in file order; a clear error names the file and the bad entry."""
    path = path or experiments_path()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the experiments file {path}: {exc}") from None
    entries = document.get("experiments") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a top-level 'experiments:' list")
    experiments, names = [], set()
    for i, entry in enumerate(entries):
        experiment, enabled = _experiment(entry, i + 1, path)
        if experiment.name in names:
            raise ValueError(f"{path}: experiment {experiment.name!r} is listed twice")
        names.add(experiment.name)
        if not enabled:
            continue
        domain = load_domain(experiment.name)  # only a registered SPICA domain runs; a clear error otherwise
        if domain.family != experiment.domain:
            raise ValueError(f"{path}: experiment {experiment.name!r} is a {domain.family!r} domain, "
                             f"not {experiment.domain!r}")
        experiments.append(experiment)
    if not experiments:
        raise ValueError(f"{path}: no experiment is enabled")
    return tuple(experiments)


def enabled_books(path: Path | None = None) -> tuple[str, ...]:
    """The names of the enabled experiments, in file order (the loop's epoch keys start with them)."""
    return tuple(experiment.name for experiment in enabled_experiments(path))
