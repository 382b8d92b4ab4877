"""Forms made from parameter declarations, and the method panel built on them.

Every registered method is covered through its declaration alone, so a method added later is tested
here without new test code (and fails here if its form cannot represent its knobs).
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from workbench.core import params as P
from workbench.core.config import StageConfig, TrainParams
from workbench.core.presets import get_preset
from workbench.gui import method_panel as MP
from workbench.gui.forms import FloatSpinBox, ParamForm
from workbench.gui.method_panel import MethodPanel
from workbench.methods import get_method, method_keys

CLASSES = [get_method(k).Params for k in method_keys()] + [TrainParams]
IDS = list(method_keys()) + ["train"]


def _other(spec: P.Spec):
    """A value unlike the default, inside the declared range, with all 17 digits of a double."""
    k = spec.knob
    lo = k.min if k.min is not None else -10.0
    hi = k.max if k.max is not None else 10.0
    if spec.type is bool:
        return not spec.default
    if k.choices:
        return next(c for c in k.choices if c != spec.default)
    if spec.type is float:
        v = lo + (hi - lo) * 0.3141592653589793
        return v if v != spec.default else lo + (hi - lo) * 0.2718281828459045
    if spec.type is int:
        return spec.default + 1 if spec.default + 1 <= hi else spec.default - 1
    if spec.type is P.LayerMap:
        return {"fc1": lo + (hi - lo) * 0.25, "conv2": lo + (hi - lo) * 0.1234567890123}
    return spec.default + "x"


def _non_defaults(cls) -> dict:
    """Other values for every field if the cross-field rules allow it, else for as many as they allow."""
    every = {spec.name: _other(spec) for spec in P.specs(cls)}
    try:
        P.build(cls, every)
        return every
    except P.ParamError:
        pass
    out = {}
    for spec in P.specs(cls):
        trial = {**out, spec.name: _other(spec)}
        try:
            P.build(cls, trial)
        except P.ParamError:
            continue
        out = trial
    return out


def _type_into(qtbot, box, text: str) -> None:
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), text)
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)   # ends editing as a user would


@pytest.fixture
def make_form(qtbot):
    def make(cls):
        form = ParamForm(cls)
        qtbot.addWidget(form)
        return form
    return make


@pytest.fixture
def panel(qtbot):
    p = MethodPanel()
    qtbot.addWidget(p)
    return p


class Recorder:
    def __init__(self, signal):
        self.calls = []
        signal.connect(lambda *args: self.calls.append(args))


# -- ParamForm, for every declaration -----------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_form_starts_at_defaults(make_form, cls):
    form = make_form(cls)
    assert form.values() == P.to_dict(P.build(cls, {}))
    assert form.error() == ""
    assert form.error_label.isHidden()


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_set_values_round_trips_exactly(make_form, cls):
    form = make_form(cls)
    changed = Recorder(form.changed)
    other = _non_defaults(cls)
    assert len(other) == len(P.specs(cls))   # today's methods allow every field to change at once
    form.set_values(other)
    values = form.values()
    for name, v in other.items():
        assert values[name] == v and type(values[name]) is type(v), name
    assert P.to_dict(P.build(cls, values)) == values
    assert form.error() == ""
    assert len(changed.calls) == 1 if other else True   # one signal per set_values, not one per field
    form.reset()
    assert form.values() == P.to_dict(P.build(cls, {}))


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_typed_scientific_notation_is_kept_exactly(qtbot, make_form, cls):
    form = make_form(cls)
    form.show()
    floats = [s for s in P.specs(cls) if s.type is float]
    for spec in floats:
        box = form.editors[spec.name]
        assert isinstance(box, FloatSpinBox)
        for text, expected in (("5e-4", 5e-4), ("1e-6", 1e-6), ("1.2345678901234567e-7",
                                                                1.2345678901234567e-7)):
            _type_into(qtbot, box, text)
            assert form.values()[spec.name] == expected, (spec.name, text)
            assert float(box.text()) == expected     # shown as typed (no rounding to 0.00)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_labels_tooltips_and_advanced_section(make_form, cls):
    form = make_form(cls)
    for spec in P.specs(cls):
        tip = form.editors[spec.name].toolTip()
        assert f"--set {spec.name}=" in tip
        if spec.knob.help:
            assert spec.knob.help in tip
        if spec.knob.max is not None:
            assert f"{spec.knob.max:g}" in tip
        assert form.labels[spec.name].text().startswith(spec.knob.label)
        assert form.advanced_box.isAncestorOf(form.editors[spec.name]) == spec.knob.advanced
    assert form.advanced_box.isHidden()          # collapsed until asked for
    form.advanced_button.click()
    assert not form.advanced_box.isHidden()


def test_unknown_key_and_bad_type(make_form):
    form = make_form(TrainParams)
    with pytest.raises(KeyError):
        form.set_values({"learning_rate": 0.1})
    with pytest.raises(P.ParamError):
        form.set_values({"epochs": 1.5})
    with pytest.raises(P.ParamError):
        form.set_values({"optimizer": "rmsprop"})
    assert form.values() == P.to_dict(TrainParams())   # nothing half-applied
    form.set_values({"lr": "3e-4", "nesterov": "false"})   # CLI text is read as on the CLI
    assert form.values()["lr"] == 3e-4 and form.values()["nesterov"] is False


def test_log_and_linear_stepping(make_form):
    form = make_form(TrainParams)
    lr = form.editors["lr"]
    lr.stepBy(1)
    assert form.values()["lr"] == 0.02
    lr.stepBy(-2)
    assert form.values()["lr"] == 0.005
    form.set_values({"lr": 3e-4})
    lr.stepBy(1)
    assert form.values()["lr"] == 5e-4
    wd = form.editors["weight_decay"]            # log field starting at 0
    wd.stepBy(1)
    assert form.values()["weight_decay"] == 1e-6
    wd.stepBy(-1)
    assert form.values()["weight_decay"] == 0.0
    dns = make_form(get_method("dns").Params)
    dns.editors["c_rate"].stepBy(2)
    assert dns.values()["c_rate"] == 3.2          # knob.step 0.1, without float noise
    dns.editors["band_high"].stepBy(-1)
    assert dns.values()["band_high"] == 1.09
    prune = make_form(get_method("magnitude").Params)
    prune.editors["prune_span"].stepBy(5)         # arrows stop at the declared maximum
    assert prune.values()["prune_span"] == 1.0


# -- errors ------------------------------------------------------------------------------------------


def test_out_of_range_typed_value_is_reported_not_clamped(qtbot, make_form):
    form = make_form(TrainParams)
    form.show()
    _type_into(qtbot, form.editors["lr"], "20")
    assert form.values()["lr"] == 20.0
    assert form.error() == "lr: 20 is above the maximum 10"            # the CLI's words
    assert form.error_label.text() == "Learning rate: 20 is above the maximum 10"   # the form's label
    assert form.error_label.isVisible()


def test_dns_cross_field_rules(make_form):
    form = make_form(get_method("dns").Params)
    form.set_values({"band_low": 1.5})            # above band_high 1.1
    assert "a_k" in form.error() and "b_k" in form.error()
    assert not form.advanced_box.isHidden()       # the offending fields are advanced: shown
    form.set_values({"band_low": 0.9, "a_k": {"fc1": 0.1}})
    assert "a_k and b_k" in form.error() and "fc1" in form.error()
    form.set_values({"b_k": {"fc1": 0.05}})
    assert "fc1: a_k 0.1 > b_k 0.05" in form.error()
    form.set_values({"b_k": {"fc1": 0.2}})
    assert form.error() == ""


def test_unparsable_layer_map_names_the_field(qtbot, make_form):
    form = make_form(get_method("dns").Params)
    form.show()
    edit = form.editors["c_rate_layers"]
    qtbot.keyClicks(edit, "fc1=6.5,fc2")
    assert form.error().startswith("c_rate_layers:")
    assert form.error_label.isVisible()
    qtbot.keyClicks(edit, "=4")
    assert form.error() == ""
    assert form.values()["c_rate_layers"] == {"fc1": 6.5, "fc2": 4.0}
    edit.setText("fc1=x")
    assert "c_rate_layers" in form.error()
    edit.setText("")
    assert form.error() == "" and form.values()["c_rate_layers"] == {}


def test_panel_validity_follows_edits(qtbot, panel):
    panel.select_method("dns")
    seen = Recorder(panel.validity_changed)
    form = panel.method_form()
    form.set_values({"band_low": 2.0})
    ok, message = seen.calls[-1]
    assert not ok and "a_k" in message and message == panel.error()
    form.set_values({"band_low": 0.5})
    assert seen.calls[-1] == (True, "")
    form.editors["c_rate_layers"].setText("fc1=oops")
    ok, message = seen.calls[-1]
    assert not ok and message.startswith("c_rate_layers:")
    assert not panel.add_button.isEnabled()
    form.editors["c_rate_layers"].setText("fc1=5")
    assert seen.calls[-1] == (True, "") and panel.add_button.isEnabled()
    panel.train_form.set_values({"lr": 11.0})
    assert seen.calls[-1] == (False, "lr: 11 is above the maximum 10")


# -- presets -----------------------------------------------------------------------------------------


def test_choosing_a_preset_fills_both_forms(qtbot, panel):
    preset = get_preset("dns-lenet300")
    stage = preset["stages"][0]
    panel.select_method("magnitude")
    panel.train_form.set_values({"batch_size": 7})   # earlier edits do not leak into the preset
    panel.all_presets.setChecked(True)
    chosen = Recorder(panel.preset_chosen)
    index = panel.preset_combo.findData("dns-lenet300")
    panel.preset_combo.setCurrentIndex(index)
    panel.preset_combo.activated.emit(index)
    assert panel.current_method() == "dns"
    cls = get_method("dns").Params
    assert panel.method_form().values() == P.to_dict(P.build(cls, stage["params"]))
    assert panel.train_form.values() == P.to_dict(P.build(TrainParams, stage["train"]))
    assert chosen.calls[-1][0]["model"] == preset["model"]
    assert panel.error() == ""
    [run] = panel.stages()
    assert P.build(cls, run.params) == P.build(cls, stage["params"])


def test_preset_list_follows_the_method(panel):
    def names():
        return [panel.preset_combo.itemData(i) for i in range(1, panel.preset_combo.count())]
    panel.select_method("magnitude")
    methods = {p["name"]: p["method"].split("+") for p in MP.list_presets()}
    assert "magnitude-lenet300" in names() and "deep-compression-lenet5" in names()   # a stage of it
    assert all("magnitude" in methods[n] for n in names()) and "dns-lenet300" not in names()
    panel.all_presets.setChecked(True)
    assert "dns-lenet300" in names()


def test_multi_stage_preset_becomes_the_pipeline(panel, monkeypatch):
    two = {"name": "two", "method": "magnitude+dns", "model": "m", "dataset": "d",
           "stages": [{"method": "magnitude", "params": {"iterations": 2}, "train": {"epochs": 3}},
                      {"method": "dns", "params": {"gamma": 1e-3}, "train": {"lr": 5e-4}}]}
    monkeypatch.setattr(MP, "list_presets", lambda: [two])
    panel.load_preset("two")
    assert [(s.method, s.params, s.train) for s in panel.stages()] == [
        (s["method"], s["params"], s["train"]) for s in two["stages"]]
    assert panel.pipeline_list.count() == 2
    assert panel.current_method() == "magnitude"


# -- pipeline ----------------------------------------------------------------------------------------


def test_pipeline_add_remove_reorder(panel):
    assert [s.method for s in panel.stages()] == [panel.current_method()]   # empty: the forms
    panel.select_method("magnitude")
    panel.method_form().set_values({"iterations": 5})
    panel.add_stage()
    panel.select_method("dns")
    panel.method_form().set_values({"gamma": 5e-4})
    panel.train_form.set_values({"lr": 1e-6})
    panel.add_stage()
    panel.select_method("plain")
    panel.add_stage()
    assert [s.method for s in panel.stages()] == ["magnitude", "dns", "plain"]
    assert panel.stages()[0].params["iterations"] == 5
    assert panel.stages()[1].params["gamma"] == 5e-4 and panel.stages()[1].train["lr"] == 1e-6
    assert "gamma=0.0005" in panel.pipeline_list.item(1).text()
    panel.move_stage(2, -1)
    assert [s.method for s in panel.stages()] == ["magnitude", "plain", "dns"]
    panel.pipeline_list.setCurrentRow(0)
    panel.down_button.click()
    assert [s.method for s in panel.stages()] == ["plain", "magnitude", "dns"]
    panel.remove_stage(0)
    assert [s.method for s in panel.stages()] == ["magnitude", "dns"]
    panel.train_form.set_values({"lr": 20.0})   # the forms edit the next stage, not the run
    assert panel.error() == ""
    panel.remove_stage(0)
    panel.remove_stage(0)
    assert [s.method for s in panel.stages()] == ["plain"]   # empty again: the forms (plain shown)


def test_set_stages(panel):
    one = StageConfig("dns", {"gamma": 2e-4}, {"epochs": 4})
    panel.set_stages([one])
    assert panel.pipeline_list.count() == 0 and panel.current_method() == "dns"
    [stage] = panel.stages()
    assert stage.params["gamma"] == 2e-4 and stage.train["epochs"] == 4
    bad = [StageConfig("magnitude", {}, {}), StageConfig("dns", {"band_low": 3.0}, {})]
    seen = Recorder(panel.validity_changed)
    panel.set_stages(bad)
    assert panel.stages() == bad
    assert panel.error().startswith("stage 2 (dns):") and seen.calls[-1][0] is False
    panel.set_stages([StageConfig("nope", {}, {})])
    assert "nope" in panel.error()


def test_arrows_follow_the_declared_range(make_form):
    form = make_form(get_method("magnitude").Params)
    box = form.editors["prune_span"]              # 0.01 .. 1, default 1
    flags = box.stepEnabled()
    assert not flags & box.StepEnabledFlag.StepUpEnabled and flags & box.StepEnabledFlag.StepDownEnabled
    iterations = form.editors["iterations"]       # 1 .. 100
    form.set_values({"iterations": 1})
    assert not iterations.stepEnabled() & iterations.StepEnabledFlag.StepDownEnabled


# -- what a number box refuses is said, not swallowed ------------------------------------------------


def test_letters_typed_into_number_boxes_are_reported(qtbot, make_form):
    from workbench.core.config import RunSettings

    form = make_form(TrainParams)
    form.show()
    lr = form.editors["lr"]
    assert form.notice_label.isHidden()
    lr.lineEdit().selectAll()
    qtbot.keyClicks(lr.lineEdit(), "x")
    assert form.values()["lr"] == 0.01 and lr.text() == "0.01"          # the value is untouched...
    assert form.notice_label.isVisible()                                  # ...and the user is told why
    assert form.notice_label.text() == ("Learning rate: “x” is not a number: type digits, a point and an "
                                        "exponent, e.g. 0.01 or 5e-4")
    assert form.error() == ""                                             # nothing invalid reaches a run
    # a half-typed number dropped when editing ends is said too
    _type_into(qtbot, lr, "5e")
    assert form.values()["lr"] == 5.0
    assert form.notice_label.text() == "Learning rate: “5e” is not a number; kept 5"

    run = ParamForm(RunSettings, fields=("seed", "train_subset"), flags=True)
    qtbot.addWidget(run)
    run.show()
    seed = run.editors["seed"]
    seed.lineEdit().selectAll()
    qtbot.keyClicks(seed.lineEdit(), "12a")
    assert run.values()["seed"] == 12
    assert run.notice_label.text() == "Seed: “12a” is not a whole number: type digits only"
    subset = run.editors["train_subset"]
    subset.lineEdit().selectAll()
    qtbot.keyClicks(subset.lineEdit(), "q")
    assert run.notice_label.text() == "Train samples: “q” is not a whole number: type digits only (0 for all)"
    assert run.values()["train_subset"] == 0
