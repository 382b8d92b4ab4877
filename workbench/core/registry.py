"""Method registry: methods register by key; the CLI, GUI and run loop look them up here."""

from __future__ import annotations

from .errors import WorkbenchError

_METHODS: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a method available under `cls.key`."""
    if cls.key in _METHODS and _METHODS[cls.key] is not cls:
        raise ValueError(f"method key {cls.key!r} registered twice")
    _METHODS[cls.key] = cls
    return cls


def _load_builtin() -> None:
    import workbench.methods  # noqa: F401 - importing registers the built-in methods


def method_keys() -> list[str]:
    _load_builtin()
    return list(_METHODS)


def get_method(key: str) -> type:
    _load_builtin()
    try:
        return _METHODS[key]
    except KeyError:
        raise WorkbenchError(f"unknown method {key!r}; known: {', '.join(_METHODS)}") from None
