"""The registry of SPICA domains the D-REAM loop may run.

Registration does not check the class on purpose: the pytest plugin (`spica.pytest_plugin`) does,
so a domain that bypasses the template fails the test run rather than an import somewhere else.
"""

from __future__ import annotations

_DOMAINS: dict[str, type] = {}


def register_domain(name: str):
    def decorator(cls: type) -> type:
        existing = _DOMAINS.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"domain {name!r} is already registered by {existing.__qualname__}")
        _DOMAINS[name] = cls
        return cls

    return decorator


def registered_domains() -> dict[str, type]:
    return dict(_DOMAINS)


def unregister_domain(name: str) -> None:
    _DOMAINS.pop(name, None)
