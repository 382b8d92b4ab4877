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
