"""The app shows the core's messages naming its own controls, not command-line flags: each message here
is produced by the core as a user would meet it, then put in the app's words."""

from __future__ import annotations

import re

import pytest
import torch

from workbench.core import params as P
from workbench.core.config import RunConfig, StageConfig, TrainParams
from workbench.core.errors import WorkbenchError
from workbench.engine.configure import complete
from workbench.gui.messages import app_words
from workbench.models.architecture import build, parse_model_spec
from workbench.models.checkpoint import load_state_dict_file

FLAG = re.compile(r"--[a-z]")


def _message(fn) -> str:
    with pytest.raises(WorkbenchError) as info:
        fn()
    return str(info.value)


def test_no_model_and_no_checkpoint(tmp_path):
    core = _message(lambda: complete(RunConfig(dataset="tiny", stages=[StageConfig("plain")])))
    assert "--model" in core and "--checkpoint" in core
    shown = app_words(core)
    assert not FLAG.search(shown)
    assert shown.startswith("choose an Architecture (") and "or a Checkpoint" in shown


def test_python_code_and_pickled_checkpoints_name_the_allow_code_box(tmp_path):
    arch = tmp_path / "arch.py"
    arch.write_text("from torch import nn\n\n\nclass Net(nn.Linear):\n    pass\n")
    code = _message(lambda: build(parse_model_spec(f"{arch}:Net"), (1, 8, 8), 4, allow_code=False))
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    trust = _message(lambda: load_state_dict_file(pickled, allow_code=False))
    for core in (code, trust):
        assert "--trust-code" in core
        shown = app_words(core)
        assert not FLAG.search(shown), shown
        assert 'tick "Allow code" only if you trust its source' in shown
        assert shown.count("Allow code") == 1                 # the core's own "(the app's ...)" folded in


def test_set_and_knob_names_become_labels():
    core = _message(lambda: P.parse_assignments(["lr"]))
    assert core.startswith("--set expects")
    assert not FLAG.search(app_words(core))
    core = _message(lambda: P.build(TrainParams, {"lr": 20.0}))
    assert core == "lr: 20 is above the maximum 10"
    assert app_words(core) == "Learning rate: 20 is above the maximum 10"
    assert app_words("stage 2 (dns): band_low: 3 is above the maximum 2") == \
        "stage 2 (dns): a_k / thr: 3 is above the maximum 2"      # that method's label
    # flags of run settings name their control with the value; unknown flags are left alone
    assert app_words("use --device cpu or --seed 3.") == 'use Device "cpu" or Seed "3".'
    assert app_words("see --help") == "see --help"


def test_the_run_button_tooltip_and_form_errors_use_labels(qtbot, window):
    window.methods.train_form.set_values({"lr": 20.0})
    assert window.methods.error() == "lr: 20 is above the maximum 10"
    assert window.run_button.toolTip() == "Learning rate: 20 is above the maximum 10"
    assert window.methods.train_form.error_label.text() == "Learning rate: 20 is above the maximum 10"
