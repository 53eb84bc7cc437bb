"""Pytest plugin: SPICA enforcement. A test that uses a domain or agent class that is not a SPICA
derivative fails, with a message naming the class.

Enabled for this project in pyproject.toml (`-p spica.pytest_plugin`). Two checks:

- the registry: a registered domain that does not derive from `Spica` fails the run after collection
  (registration itself refuses one; this catches a registry filled behind its back);
- class definitions: while tests are collected and run, every class defined in the project's own
  code (not in installed packages) whose name ends in `Domain` or `Agent` must derive from `Spica`.
  One defined by a test module or conftest fails the collection; one defined inside a test fails
  that test.
"""

from __future__ import annotations

import builtins
import sys
from pathlib import Path

import pytest

from spica.base import Spica
from spica.registry import not_spica_message, registered_domains

SPICA_SUFFIXES = {"Domain": "domain", "Agent": "agent"}

_offenders: list[str] = []
_original_build_class = builtins.__build_class__
_root: Path | None = None


def non_spica_domains() -> dict[str, type]:
    return {
        name: cls
        for name, cls in registered_domains().items()
        if not (isinstance(cls, type) and issubclass(cls, Spica))
    }


def _in_project(module_name: str) -> bool:
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if path is None or _root is None:
        return module_name == "__main__"
    resolved = Path(path).resolve()
    return resolved.is_relative_to(_root) and "site-packages" not in resolved.parts


def _checked_build_class(func, name, *bases, **kwargs):
    cls = _original_build_class(func, name, *bases, **kwargs)
    what = next((kind for suffix, kind in SPICA_SUFFIXES.items() if name.endswith(suffix)), None)
    if what and isinstance(cls, type) and not issubclass(cls, Spica) and _in_project(cls.__module__):
        _offenders.append(not_spica_message(cls, what))
    return cls


def pytest_configure(config: pytest.Config) -> None:
    global _root
    _root = Path(str(config.rootpath)).resolve()
    builtins.__build_class__ = _checked_build_class


def pytest_unconfigure(config: pytest.Config) -> None:
    builtins.__build_class__ = _original_build_class


def pytest_collection_finish(session: pytest.Session) -> None:
    offenders = non_spica_domains()
    if offenders:
        names = ", ".join(f"{name} ({cls!r})" for name, cls in sorted(offenders.items()))
        raise pytest.UsageError(f"SPICA: registered domains must derive from spica.Spica: {names}")
    if _offenders:
        found = "; ".join(dict.fromkeys(_offenders))
        _offenders.clear()
        raise pytest.UsageError(found)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    _offenders.clear()
    yield
    if _offenders:
        found = "; ".join(dict.fromkeys(_offenders))
        _offenders.clear()
        pytest.fail(found, pytrace=False)
