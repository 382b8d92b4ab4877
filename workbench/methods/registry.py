"""Method registry: a method class registers under its key (`@register`); `workbench.methods` imports
the built-in families and answers lookups. This module imports no method, so no import runs in a circle.
"""

from __future__ import annotations

from workbench.core.errors import WorkbenchError

_METHODS: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a method available under `cls.key`."""
    if cls.key in _METHODS and _METHODS[cls.key] is not cls:
        raise ValueError(f"method key {cls.key!r} registered twice")
    _METHODS[cls.key] = cls
    return cls


def registered_keys() -> list[str]:
    return list(_METHODS)


def registered(key: str) -> type:
    try:
        return _METHODS[key]
    except KeyError:
        raise WorkbenchError(f"unknown method {key!r}; known: {', '.join(_METHODS)}") from None
