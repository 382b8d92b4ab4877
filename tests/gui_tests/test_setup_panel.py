"""The setup panel's run settings come from their one declaration (core.config.RunSettings), as the
CLI's flags do: the same choices, ranges, defaults and names, and the values reach the config."""

from __future__ import annotations

from workbench.cli import build_parser
from workbench.core import params as P
from workbench.core.config import RunConfig, RunSettings, StageConfig
from workbench.engine.configure import complete


def test_every_run_setting_is_in_the_panel_and_on_the_command_line(qtbot):
    from workbench.gui.setup_panel import SetupPanel

    panel = SetupPanel()
    qtbot.addWidget(panel)
    parts = panel.config_parts()
    run_parser = build_parser()._subparsers._group_actions[0].choices["run"]
    flags = {a.dest for a in run_parser._actions}
    for spec in P.specs(RunSettings):
        assert spec.name in parts, spec.name                 # the app sets it
        assert spec.name in flags, spec.name                 # the CLI takes it
        assert parts[spec.name] == spec.default
    device = panel.run_form.editors["device"]
    assert [device.itemText(i) for i in range(device.count())] == ["auto", "cpu", "cuda", "mps"]
    assert "--seed" in panel.run_form.editors["seed"].toolTip()
    assert panel.run_form.editors["train_subset"].text() == "all"


def test_values_set_in_the_panel_reach_a_complete_config(qtbot):
    from workbench.gui.setup_panel import SetupPanel

    panel = SetupPanel()
    qtbot.addWidget(panel)
    panel.set_parts({"model": "mlp_tiny", "dataset": "tiny", "device": "mps", "seed": 12345,
                     "train_subset": 300, "test_subset": 100, "huffman": True, "pretrain_epochs": 3})
    parts = panel.config_parts()
    config = complete(RunConfig(stages=[StageConfig("plain")], **parts))
    assert config.settings() == {"device": "mps", "seed": 12345, "train_subset": 300, "test_subset": 100,
                                 "data_dir": "", "huffman": True, "pretrain_epochs": 3}
    assert panel.error() == ""


def test_a_setting_out_of_range_disables_the_run_with_the_cli_message(qtbot):
    from workbench.gui.setup_panel import SetupPanel

    panel = SetupPanel()
    qtbot.addWidget(panel)
    panel.set_parts({"dataset": "tiny"})
    panel.run_form.editors["seed"].setValue(-5)       # typed below the declared minimum
    assert panel.error() == "seed: -5 is below the minimum 0"


# --- a model file instead of a zoo architecture -------------------------------------------------------

ARCH = """import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


def make_net():
    return Net()


class _Hidden:
    pass
"""


def _panel(qtbot):
    from workbench.gui.setup_panel import SetupPanel

    panel = SetupPanel()
    qtbot.addWidget(panel)
    return panel


def _drop(panel, *paths):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    panel.dropEvent(event)


def test_a_model_file_spec_round_trips_through_the_panel(qtbot, tmp_path):
    panel = _panel(qtbot)
    onnx = tmp_path / "net.onnx"
    onnx.write_bytes(b"\x08\x07")
    panel.set_parts({"model": str(onnx), "dataset": "tiny"})
    assert panel.config_parts()["model"] == str(onnx)
    form = panel._model_form
    assert form.isRowVisible(panel._file_row) and not form.isRowVisible(panel._name_row)
    assert panel.checkpoint.placeholderText() == "none: the file's own weights"
    arch = tmp_path / "arch.py"
    arch.write_text(ARCH)
    panel.set_parts({"model": f"{arch}:make_net"})
    assert panel.config_parts()["model"] == f"{arch}:make_net"
    assert panel.model_name.currentText() == "make_net" and form.isRowVisible(panel._name_row)
    panel.set_parts({"model": "lenet5"})
    assert panel.config_parts()["model"] == "lenet5" and not form.isRowVisible(panel._file_row)
    panel.set_parts({"model": str(tmp_path / "missing.pt2")})
    assert panel.error() == f"Model file: {tmp_path / 'missing.pt2'} does not exist"


def test_a_dropped_py_file_offers_its_classes_read_without_running_it(qtbot, tmp_path):
    panel = _panel(qtbot)
    panel.set_parts({"dataset": "tiny"})
    arch = tmp_path / "arch.py"
    arch.write_text("raise SystemExit('ran')\n" + ARCH)         # running it would end the test process
    chosen = []
    panel.model_chosen.connect(chosen.append)
    _drop(panel, arch)
    qtbot.waitUntil(lambda: panel.model_name.count() == 2, timeout=5000)
    assert [panel.model_name.itemText(i) for i in range(2)] == ["Net", "make_net"]   # nn.Module classes first
    assert panel.config_parts()["model"] == f"{arch}:Net"
    assert chosen == [str(arch)]
    assert panel.checkpoint.text() == ""


def test_drops_sort_models_runs_and_checkpoints(qtbot, tmp_path):
    panel = _panel(qtbot)
    pt2, run, weights = tmp_path / "net.pt2", tmp_path / "run.h5", tmp_path / "w.safetensors"
    for p in (pt2, run, weights):
        p.write_bytes(b"x")
    runs = []
    panel.open_runs.connect(runs.append)
    _drop(panel, pt2, run, weights)
    assert panel.config_parts()["model"] == str(pt2)
    assert panel.config_parts()["checkpoint"] == str(weights)
    assert runs == [[str(run)]]


def test_a_python_model_disables_run_with_the_opt_in_reason_until_allowed(qtbot, tmp_path):
    panel = _panel(qtbot)
    arch = tmp_path / "arch.py"
    arch.write_text(ARCH)
    panel.set_parts({"model": f"{arch}:Net", "dataset": "tiny"})
    reason = "arch.py will be imported and Net() called: tick Allow code only if you trust this file"
    assert panel.error() == reason
    assert panel.code_note.text() == reason
    panel.trust.setChecked(True)
    assert panel.error() == ""
    assert panel.code_note.text() == "Allowed: arch.py will be imported and Net() called"


def test_a_checkpoint_that_holds_pickled_code_needs_the_opt_in(qtbot, tmp_path):
    import torch

    panel = _panel(qtbot)
    panel.set_parts({"model": "mlp_tiny", "dataset": "tiny"})
    plain, pickled = tmp_path / "plain.pt", tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), plain)
    torch.save(torch.nn.Linear(2, 2), pickled)                # a whole module: unpickling imports code
    panel.set_parts({"checkpoint": str(plain)})
    qtbot.wait(200)
    assert panel.error() == "" and panel.code_note.text() == ""
    panel.set_parts({"checkpoint": str(pickled)})
    qtbot.waitUntil(lambda: panel.error() != "", timeout=5000)
    assert panel.error().startswith("module.pt holds pickled Python objects (torch.nn.modules.linear.Linear")
    assert panel.error().endswith("loading it runs their code: tick Allow code only if you trust this file")
    panel.trust.setChecked(True)
    assert panel.error() == ""
