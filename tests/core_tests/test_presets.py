"""Every preset shipped in resources/presets builds: its model is in the zoo and each stage's method
parameters and training knobs pass the same validation as the CLI's --set (unknown names, ranges, the
method's own cross-checks), so a typo in a preset fails here rather than in a user's run."""

from __future__ import annotations

import pytest

from workbench.core import params as P
from workbench.core.config import TrainParams
from workbench.core.presets import list_presets, preset_stages
from workbench.methods import get_method
from workbench.models import zoo

PRESETS = [p["name"] for p in list_presets()]


def test_presets_are_found():
    assert {"hashed-lenet300", "funhash-lenet300", "sws-lenet300", "lowrank-lenet300"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_stages_validate(name):
    preset = next(p for p in list_presets() if p["name"] == name)
    assert preset["model"] in zoo.model_keys()
    for stage in preset_stages(name):
        get_method(stage.method).from_values(stage.params)
        P.build(TrainParams, stage.train)
