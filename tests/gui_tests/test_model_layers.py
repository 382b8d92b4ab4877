"""The Layers tab: the chosen model's layers, built in the thread pool, with what each stage does with them;
a model file's own input shape checked against the data set before Run; a broken file is one line."""

from __future__ import annotations

import torch
from torch import nn

from workbench.core.config import StageConfig
from workbench.models import zoo
from workbench.models.layers import count_params

DEPTHWISE = "dense: a depthwise Conv2d has no weight matrix to factorise or hash"


class SmallCnn(nn.Module):
    def __init__(self, channels: int = 1, classes: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(channels, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 8 * 8, classes)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def make_pt2(path, channels: int = 1):
    """A small CNN saved as torch.export with a dynamic batch; afterwards its Python code refuses to run, so
    whatever reads the file must do so from the graph alone."""
    torch.manual_seed(0)
    model = SmallCnn(channels).eval()
    example = torch.randn(2, channels, 8, 8)
    torch.export.save(torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)),
                      str(path))
    return path


def _no_user_code(monkeypatch):
    def refuse(self, x):
        raise AssertionError("the user's forward ran")

    monkeypatch.setattr(SmallCnn, "forward", refuse)
    monkeypatch.setattr(SmallCnn, "__init__", refuse)


def _cell(table, row: int, col: int) -> str:
    item = table.item(row, col)
    return item.text() if item is not None else ""


def _rows(table) -> dict[str, list[str]]:
    return {_cell(table, r, 0): [_cell(table, r, c) for c in range(table.columnCount())]
            for r in range(table.rowCount())}


def _built(window, spec: str):
    layers = window.model_layers
    return lambda: layers.summary is not None and layers.summary.spec == spec and not layers.busy


def test_bn_tiny_lists_its_layers_and_the_depthwise_conv_stays_dense_for_low_rank(window, qtbot):
    window.setup.set_parts({"model": "bn_tiny", "dataset": "tiny"})
    window.methods.select_method("lowrank")
    qtbot.waitUntil(_built(window, "bn_tiny"), timeout=10000)
    layers = window.model_layers
    table = layers.table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["Layer", "Type", "Shape", "Parameters", "lowrank"]
    rows = _rows(table)
    assert [rows[n][1] for n in ("conv1", "bn1", "dw", "bn2", "pw", "fc")] == [
        "Conv2d", "BatchNorm2d", "depthwise Conv2d", "BatchNorm2d", "Conv2d", "Linear"]
    assert rows["dw"][4] == DEPTHWISE
    assert layers.verdicts("dw") == [DEPTHWISE]
    assert rows["conv1"][4] == rows["pw"][4] == rows["fc"][4] == "acts"
    assert rows["bn1"][4] == "dense" and rows["bn1"][3] == "16"           # BatchNorm: weight and bias
    assert rows["dw"][2] == "8×1×3×3"
    total = count_params(zoo.build_model("bn_tiny", (1, 8, 8), 4))        # tiny: 1x8x8, 4 classes
    assert rows["total"][3] == f"{total:,}"
    assert "built for tiny: input 1×8×8, 4 classes" in layers.title.text()

    # every stage of a pipeline gets its column; DNS acts on every compressible layer
    window.methods.set_stages([StageConfig("dns"), StageConfig("lowrank", {"layers": "fc"})])
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers[4:] == ["1. dns", "2. lowrank"]
    rows = _rows(table)
    assert rows["dw"][4:] == ["acts", DEPTHWISE]
    assert rows["conv1"][4:] == ["acts", "dense: layers=fc"]
    assert rows["fc"][4:] == ["acts", "acts"]


def test_a_pt2_file_fills_the_table_from_its_graph_without_running_user_code(window, qtbot, tmp_path, monkeypatch):
    path = make_pt2(tmp_path / "net.pt2")
    _no_user_code(monkeypatch)
    window.methods.select_method("hashed")
    window.setup.set_parts({"model": str(path), "dataset": "tiny"})
    assert window.setup.config_parts()["model"] == str(path)
    qtbot.waitUntil(_built(window, str(path)), timeout=20000)
    rows = _rows(window.model_layers.table)
    assert rows["conv"][1:4] == ["Conv2d", "6×1×3×3", "60"]
    assert rows["fc"][1:5] == ["Linear", "4×384", "1,540", "acts"]
    assert rows["bn"][1] == "BatchNorm2d" and rows["bn"][4] == "dense"
    assert "from the file: input 1×8×8, 4 outputs" in window.model_layers.title.text()
    assert not window.setup.trust.isChecked()
    assert window.setup.error() == "" and window.run_button.isEnabled()


def test_a_pt2_for_other_inputs_than_the_data_set_disables_run_naming_both_shapes(window, qtbot, tmp_path):
    path = make_pt2(tmp_path / "rgb.pt2", channels=3)
    window.setup.set_parts({"model": str(path), "dataset": "tiny"})
    expected = "rgb.pt2 takes inputs of shape 3×8×8 but tiny has 1×8×8: choose a data set of that shape"
    qtbot.waitUntil(lambda: window.setup.error() == expected, timeout=20000)
    assert not window.run_button.isEnabled()
    assert window.run_button.toolTip() == expected
    assert window.setup.model_status.text() == expected and "\n" not in expected
    # a data set whose shape is known only once loaded: no check here (the run checks before any file)
    window.setup.set_parts({"dataset": "folder:/nowhere"})
    assert "takes inputs" not in window.setup.error()


def test_a_broken_model_file_is_one_line_and_the_window_stays_usable(window, qtbot, tmp_path):
    path = tmp_path / "broken.pt2"
    path.write_bytes(b"PK\x03\x04 not really a zip archive")
    window.setup.set_parts({"model": str(path), "dataset": "tiny"})
    layers = window.model_layers
    qtbot.waitUntil(lambda: not layers.busy and layers.stack.currentWidget() is layers.message
                    and "broken.pt2" in layers.message.text(), timeout=20000)
    line = layers.message.text()
    assert "\n" not in line and line
    assert window.setup.error() and not window.run_button.isEnabled()
    window.setup.set_parts({"model": "mlp_tiny"})            # back to a zoo model: all works again
    qtbot.waitUntil(_built(window, "mlp_tiny"), timeout=10000)
    assert window.setup.error() == "" and window.run_button.isEnabled()


def test_a_python_model_is_built_for_the_table_only_once_code_is_allowed(window, qtbot, tmp_path):
    ran = tmp_path / "ran"
    arch = tmp_path / "arch.py"
    arch.write_text(f"from pathlib import Path\nfrom torch import nn\nPath({str(ran)!r}).touch()\n\n"
                    "class Net(nn.Sequential):\n"
                    "    def __init__(self, input_shape, num_classes):\n"
                    "        c, h, w = input_shape\n"
                    "        super().__init__(nn.Flatten(), nn.Linear(c * h * w, num_classes))\n")
    window.setup.set_parts({"model": f"{arch}:Net", "dataset": "tiny"})
    layers = window.model_layers
    assert "Allow code" in layers.message.text() and layers.summary is None
    assert not window.run_button.isEnabled() and not ran.exists()
    window.setup.trust.setChecked(True)
    qtbot.waitUntil(_built(window, f"{arch}:Net"), timeout=10000)
    assert ran.exists()
    assert _rows(layers.table)["1"][1:4] == ["Linear", "4×64", "260"]
    assert window.run_button.isEnabled()


def test_a_zoo_model_too_small_for_the_data_set_disables_run_with_the_builders_line(window, qtbot):
    window.setup.set_parts({"model": "lenet5", "dataset": "tiny"})
    qtbot.waitUntil(lambda: window.setup.error() != "", timeout=10000)
    assert window.setup.error() == "lenet5 needs inputs of at least 16x16 pixels, got 8x8"
    assert window.model_layers.message.text() == window.setup.error()
    assert not window.run_button.isEnabled()
    window.setup.set_parts({"dataset": "mnist"})
    qtbot.waitUntil(_built(window, "lenet5"), timeout=10000)
    assert "built for mnist: input 1×28×28, 10 classes" in window.model_layers.title.text()
    assert window.setup.model_problem() == ""
