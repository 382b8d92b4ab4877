"""User-facing errors.

A `WorkbenchError` carries a message meant to be shown as one line (CLI: on stderr with a non-zero exit,
GUI: in the window). Anything else that escapes is a bug and keeps its traceback.
"""


class WorkbenchError(Exception):
    """Bad input or an impossible request, explained in one line."""


class DataError(WorkbenchError):
    """A data set is missing, wrong or damaged."""


class CheckpointError(WorkbenchError):
    """A checkpoint is missing, foreign, damaged or unsafe to load."""


class ParamError(WorkbenchError):
    """A parameter value is out of range, of the wrong type, or inconsistent with another."""
