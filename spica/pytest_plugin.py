"""Pytest plugin: the run fails when a registered domain does not derive from `Spica`.

Enabled for this project in pyproject.toml (`-p spica.pytest_plugin`). The check runs after
collection, so domains registered by test modules and conftest files are checked too.
"""

from __future__ import annotations

import pytest

import spica.book  # noqa: F401  (registers the shipped domains)
from spica.base import Spica
from spica.registry import registered_domains


def non_spica_domains() -> dict[str, type]:
    return {
        name: cls
        for name, cls in registered_domains().items()
        if not (isinstance(cls, type) and issubclass(cls, Spica))
    }


def pytest_collection_finish(session: pytest.Session) -> None:
    offenders = non_spica_domains()
    if offenders:
        names = ", ".join(f"{name} ({cls!r})" for name, cls in sorted(offenders.items()))
        raise pytest.UsageError(f"SPICA: registered domains must derive from spica.Spica: {names}")
