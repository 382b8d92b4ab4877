"""Compression methods, one module (for hashing, one package) per family behind one interface
(`methods/base.py`). Importing this package registers the built-in families listed here, in the order
the CLI lists and the app offers them; everything above this floor looks methods up through
`get_method` / `method_keys`. The registry (`methods/registry.py`) imports no method, so discovery
runs one way: this list -> the method modules -> the registry.
"""
# isort: skip_file

from workbench.methods import dns, magnitude, plain  # noqa: F401 - importing registers them
from workbench.methods import kmeans, sws  # noqa: F401
from workbench.methods import lowrank  # noqa: F401
from workbench.methods import structured  # noqa: F401
from workbench.methods import int8  # noqa: F401
from workbench.methods.hashing import hashednets, funhash  # noqa: F401
from workbench.methods.registry import registered, registered_keys

__all__ = ["get_method", "method_keys"]


def method_keys() -> list[str]:
    """Every registered method's key, in registration order."""
    return registered_keys()


def get_method(key: str) -> type:
    """The method class registered under `key`; a one-line WorkbenchError naming the known keys if none."""
    return registered(key)
