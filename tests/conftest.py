"""Every test session: the user's own presets folder is never read or written (a user preset with a
shipped-looking name, or a broken one, would change what the preset tests see)."""

from __future__ import annotations

import os
import tempfile

# Set at import, before any test module loads the presets (and inherited by the CLI subprocesses the tests
# start); tests of the user folder point it at their own tmp folder with monkeypatch.
os.environ["WORKBENCH_PRESETS"] = tempfile.mkdtemp(prefix="wb-presets-")
