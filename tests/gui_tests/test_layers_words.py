"""The Layers tab shows the core's messages in the app's words, as the rest of the window does: a line
that names `--trust-code` on the command line names the "Allow code" box here."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from workbench.core.errors import WorkbenchError  # noqa: E402
from workbench.gui.messages import app_words  # noqa: E402
from workbench.models.architecture import build, parse_model_spec  # noqa: E402


def test_a_core_failure_in_the_layers_tab_names_the_apps_controls(window, qtbot, tmp_path):
    arch = tmp_path / "arch.py"
    arch.write_text("from torch import nn\n\nclass Net(nn.Linear):\n    pass\n")
    with pytest.raises(WorkbenchError) as caught:       # the core's own line, as the thread pool reports it
        build(parse_model_spec(f"{arch}:Net"), (1, 8, 8), 4, allow_code=False)
    line = str(caught.value)
    assert "--trust-code" in line
    layers = window.model_layers
    layers._signals.failed.emit(layers._key, line)      # what run_in_pool sends when the build fails
    shown = layers.message.text()
    assert shown == app_words(line) and "--trust-code" not in shown and '"Allow code"' in shown
    assert layers.stack.currentWidget() is layers.message
