"""Qt-free core: parameters, registry, the run loop, accounting, the run store and export."""
