"""Compression methods, one module per family; importing this package registers them all."""

from . import dns, magnitude, plain  # noqa: F401
from . import kmeans  # noqa: F401
from . import sws  # noqa: F401
from . import lowrank  # noqa: F401
from . import funhash, hashednets  # noqa: F401
