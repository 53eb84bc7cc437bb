"""The SPICA domains the loop can run, one folder each (book/, code_repair/).

A folder is a domain when it has a `domain.py` that registers its SPICA derivative (a `spica.SpicaDomain`)
in the SPICA registry; `experiments.yaml` names the domain and the instance to run (`domain: book`,
`name: space_time`). The runner, the assets and the deck take a domain only through `load_domain` here,
which registers the shipped domains first. Importing this package imports nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import spica


def shipped_domains() -> tuple[str, ...]:
    """The folders under domains/ that hold a domain (a `domain.py`), sorted."""
    here = Path(__file__).parent
    return tuple(sorted(info.name for info in pkgutil.iter_modules([str(here)])
                        if info.ispkg and (here / info.name / "domain.py").is_file()))


def register_shipped() -> None:
    """Import every shipped domain's `domain.py`, which registers what it provides (idempotent)."""
    for family in shipped_domains():
        importlib.import_module(f"{__name__}.{family}.domain")


def load_domain(name: str) -> spica.SpicaDomain:
    """The registered domain instance `name` (e.g. the book `space_time`), from the SPICA registry only."""
    register_shipped()
    return spica.load_domain(name)
