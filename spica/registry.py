"""The registry of SPICA domains the D-REAM loop may run.

The runner takes a domain only from here (`load_domain`), never by importing a class: a domain
that is not registered does not run. Registration refuses a class that does not derive from
`spica.Spica`, naming it; the pytest plugin (`spica.pytest_plugin`) checks the registry again and
fails any test that defines a domain or agent class outside the template.
"""

from __future__ import annotations

from typing import Any

_DOMAINS: dict[str, type] = {}


class NotSpicaError(TypeError):
    """A domain or agent class that does not derive from `spica.Spica`."""


def not_spica_message(cls: Any, what: str = "domain") -> str:
    name = getattr(cls, "__qualname__", repr(cls))
    module = getattr(cls, "__module__", "?")
    return f"SPICA: the {what} class {name} ({module}) does not derive from spica.Spica"


def _is_spica(cls: Any) -> bool:
    from spica.base import Spica

    return isinstance(cls, type) and issubclass(cls, Spica)


def register_domain(name: str):
    def decorator(cls: type) -> type:
        if not _is_spica(cls):
            raise NotSpicaError(not_spica_message(cls) + f"; it cannot be registered as domain {name!r}")
        existing = _DOMAINS.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"domain {name!r} is already registered by {existing.__qualname__}")
        _DOMAINS[name] = cls
        return cls

    return decorator


def registered_domains() -> dict[str, type]:
    return dict(_DOMAINS)


def load_domain(name: str) -> Any:
    """The registered domain `name`, loaded (its class's `load(name)`): how the runner gets a domain."""
    cls = _DOMAINS.get(name)
    if cls is None:
        known = ", ".join(sorted(_DOMAINS)) or "none"
        raise ValueError(f"{name!r} is not a registered SPICA domain (registered: {known})")
    if not _is_spica(cls):  # registered behind the decorator's back
        raise NotSpicaError(not_spica_message(cls))
    return cls.load(name)


def unregister_domain(name: str) -> None:
    _DOMAINS.pop(name, None)
