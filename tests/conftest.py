"""Every test session: the user's own presets folder is never read or written (a user preset with a
shipped-looking name, or a broken one, would change what the preset tests see)."""

from __future__ import annotations

import os
import tempfile

import pytest

# Set at import, before any test module loads the presets (and inherited by the CLI subprocesses the tests
# start); tests of the user folder point it at their own tmp folder with monkeypatch.
os.environ["WORKBENCH_PRESETS"] = tempfile.mkdtemp(prefix="wb-presets-")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A user presets folder of the test's own (not yet made: the first save makes it)."""
    from workbench.core.presets import reload_presets

    path = tmp_path / "presets"
    monkeypatch.setenv("WORKBENCH_PRESETS", str(path))
    reload_presets()
    yield path
    reload_presets()
