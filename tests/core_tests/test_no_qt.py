"""The floors below the app import no Qt, proven in a fresh interpreter (import-linter checks the source,
this checks what really gets loaded)."""

import json
import subprocess
import sys

CODE = """
import json, sys
import workbench.engine.runner, workbench.engine.export, workbench.engine.compare, workbench.engine.console
import workbench.cli, workbench.methods, workbench.data, workbench.models, workbench.core.store
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6'))
print(json.dumps({"bad": bad, "loaded": 'workbench.engine.runner' in sys.modules}))
"""


def test_core_imports_without_qt():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loaded"] is True      # the imports really happened in that interpreter
    assert result["bad"] == []
