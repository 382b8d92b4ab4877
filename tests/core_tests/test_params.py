"""Parameter declarations: build/validate, text parsing, cross-field rules, config JSON round trip."""

from __future__ import annotations

import json

import pytest

from workbench.core import params as P
from workbench.core.config import RunConfig, StageConfig, TrainParams
from workbench.core.errors import ParamError
from workbench.core.params import LayerMap
from workbench.methods import get_method, method_keys
from workbench.methods.dns import DNSParams, DynamicNetworkSurgery
from workbench.methods.magnitude import MagnitudeParams


def test_build_with_good_values_gives_typed_values():
    p = P.build(DNSParams, {"c_rate": "2.5", "gamma": 1e-3, "t_stop": "1e3", "prune_bias": "no",
                            "c_rate_layers": "fc1=6.5,fc2=4", "layers": "fc"})
    assert p.c_rate == 2.5 and isinstance(p.c_rate, float)
    assert p.gamma == 1e-3
    assert p.t_stop == 1000 and isinstance(p.t_stop, int)
    assert p.prune_bias is False
    assert p.c_rate_layers == {"fc1": 6.5, "fc2": 4.0} and isinstance(p.c_rate_layers, LayerMap)
    assert p.layers == "fc"
    # untouched fields keep their declared defaults
    assert (p.band_low, p.band_high, p.power) == (0.9, 1.1, 1.0)


def test_defaults_do_not_share_mutable_layer_maps():
    a, b = P.build(DNSParams), P.build(DNSParams)
    a.a_k["fc1"] = 1.0
    assert b.a_k == {}


def test_unknown_name_is_rejected():
    with pytest.raises(ParamError, match="unknown parameter 'c_rat'"):
        P.build(DNSParams, {"c_rat": 1.0})


@pytest.mark.parametrize("cls, values, words", [
    (DNSParams, {"c_rate": 25}, ["c_rate", "maximum 20"]),
    (DNSParams, {"gamma": -0.5}, ["gamma", "minimum 0"]),
    (DNSParams, {"c_rate_layers": "fc1=1,fc2=30"}, ["c_rate_layers", "30", "maximum"]),
    (TrainParams, {"batch_size": 0}, ["batch_size", "minimum 1"]),
    (TrainParams, {"lr": float("nan")}, ["lr", "finite"]),
    (TrainParams, {"optimizer": "rmsprop"}, ["optimizer", "rmsprop", "sgd"]),
    (DNSParams, {"layers": "bias"}, ["layers", "'bias'"]),
])
def test_out_of_range_names_the_field(cls, values, words):
    with pytest.raises(ParamError) as info:
        P.build(cls, values)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("name, value", [
    ("t_stop", "abc"), ("t_stop", 1.5), ("t_stop", "1.5"), ("t_stop", True),
    ("c_rate", [1.0]), ("c_rate", True), ("c_rate", "three"),
    ("prune_bias", "maybe"), ("prune_bias", 1),
    ("a_k", 3.0), ("a_k", {"fc1": "x"}), ("c_rate_layers", "fc1"),
])
def test_wrong_type_is_rejected(name, value):
    with pytest.raises(ParamError, match=name):
        P.build(DNSParams, {name: value})


@pytest.mark.parametrize("text", ["fc1=6.5,fc2=4", ' {"fc1": 6.5, "fc2": 4} ', "fc1 = 6.5; fc2=4", "fc1=6.5,,fc2=4,"])
def test_layer_map_text_and_json_forms(text):
    p = P.build(DNSParams, {"c_rate_layers": text})
    assert dict(p.c_rate_layers) == {"fc1": 6.5, "fc2": 4.0}


def test_layer_map_formats_back_to_the_text_form():
    assert P.format_layer_map({"fc1": 6.5, "fc2": 4.0}) == "fc1=6.5,fc2=4"
    assert P.parse_layer_map(P.format_layer_map({"fc1": 6.5, "fc2": 4.0})) == {"fc1": 6.5, "fc2": 4.0}
    assert P.parse_layer_map("") == {}


@pytest.mark.parametrize("text, value", [
    ("1", True), ("true", True), ("Yes", True), ("ON", True), (" true ", True),
    ("0", False), ("false", False), ("no", False), ("Off", False),
])
def test_bool_parsing(text, value):
    assert P.build(DNSParams, {"prune_bias": text}).prune_bias is value


def test_small_float_survives_text_json_round_trip_exactly():
    spec = next(s for s in P.specs(DNSParams) if s.name == "gamma")
    value = P.parse_text(spec, "5e-4")
    assert value == 5e-4
    p = P.build(DNSParams, {"gamma": value})
    text = json.dumps(P.to_dict(p))
    again = P.build(DNSParams, json.loads(text))
    assert again.gamma == 5e-4
    assert P.to_dict(again) == P.to_dict(p)
    # the same through the run config (the JSON stored in every run file)
    cfg = RunConfig(dataset="tiny", stages=[StageConfig("dns", {"gamma": "5e-4"}, {"lr": 5e-4})])
    back = RunConfig.from_json(cfg.to_json())
    assert P.build(DNSParams, back.stages[0].params).gamma == 5e-4
    assert P.build(TrainParams, back.stages[0].train).lr == 5e-4


def test_dns_band_low_above_band_high():
    with pytest.raises(ParamError, match=r"band_low: the a_k factor 1\.2 exceeds the b_k factor 1\.1"):
        P.build(DNSParams, {"band_low": 1.2, "band_high": 1.1})
    assert P.build(DNSParams, {"band_low": 1.1, "band_high": 1.1}).band_low == 1.1   # equal is fine


def test_dns_a_k_above_b_k_for_a_layer():
    with pytest.raises(ParamError) as info:
        P.build(DNSParams, {"a_k": "fc1=0.1,fc2=0.5", "b_k": "fc1=0.2,fc2=0.1"})
    msg = str(info.value)
    assert "fc2" in msg and "0.5" in msg and "0.1" in msg and "a_k <= b_k" in msg
    assert "fc1" not in msg


def test_dns_a_k_without_b_k():
    with pytest.raises(ParamError, match="only one given for fc3"):
        P.build(DNSParams, {"a_k": "fc1=0.1,fc3=0.2", "b_k": "fc1=0.3"})
    with pytest.raises(ParamError, match="only one given for fc1"):
        P.build(DNSParams, {"b_k": "fc1=0.3"})


def test_cross_field_rules_apply_to_directly_built_params():
    with pytest.raises(ParamError, match="a_k"):
        DynamicNetworkSurgery(DNSParams(band_low=2.0, band_high=1.0))


def test_magnitude_rejects_all_zero_q():
    with pytest.raises(ParamError, match="nothing would be pruned"):
        P.build(MagnitudeParams, {"q_fc": 0, "q_conv": "0"})
    with pytest.raises(ParamError, match="nothing would be pruned"):
        P.build(MagnitudeParams, {"q_fc": 0, "q_conv": 0, "q_layers": "fc1=0"})
    assert P.build(MagnitudeParams, {"q_fc": 0, "q_conv": 0, "q_layers": "fc1=1"}).q_layers == {"fc1": 1.0}


def test_parse_assignments():
    got = P.parse_assignments(["lr=0.01", "c_rate_layers=fc1=6.5,fc2=4", " gamma = 5e-4 "])
    assert got == {"lr": "0.01", "c_rate_layers": "fc1=6.5,fc2=4", "gamma": "5e-4"}
    assert P.parse_assignments(["lr=0.1", "lr=0.2"]) == {"lr": "0.2"}        # the last one wins
    for bad in ("lr", "=3"):
        with pytest.raises(ParamError, match="name=value"):
            P.parse_assignments([bad])


def test_run_config_json_round_trip():
    cfg = RunConfig(dataset="tiny", model="mlp_tiny",
                    stages=[StageConfig("dns", {"c_rate_layers": {"fc1": 6.5}, "gamma": 5e-4},
                                        {"epochs": 3, "lr": 0.02}),
                            StageConfig("plain", {}, {"epochs": 1})],
                    seed=7, out_dir="/tmp/x", name="n", train_subset=100, pretrain_epochs=2)
    text = cfg.to_json()
    assert json.loads(text)["stages"][0]["params"]["c_rate_layers"] == {"fc1": 6.5}
    back = RunConfig.from_json(text)
    assert back == cfg
    assert back.method_label == "dns+plain"
    # files written by a newer version may carry keys this one does not know
    d = json.loads(text)
    d["future_field"] = 1
    assert RunConfig.from_json(json.dumps(d)) == cfg


@pytest.mark.parametrize("key", method_keys())
def test_method_params_do_not_clash_with_training_knobs(key):
    # The CLI routes `--set name=value` by name: a clash would make one of them unreachable.
    cls = get_method(key)
    method_names = {s.name for s in P.specs(cls.Params)}
    train_names = {s.name for s in P.specs(TrainParams)}
    assert not method_names & train_names
    # and every declaration describes itself as JSON (the CLI's `methods --json`, the GUI's form)
    json.dumps(P.describe(cls.Params))
    cls.from_values({})     # defaults are valid


def test_sgd_without_momentum_is_valid_and_builds():
    from workbench.engine.training import build_optimizer

    train = P.build(TrainParams, {"momentum": 0})           # nesterov stays at its default (True)
    opt = build_optimizer(train, [{"params": [__import__("torch").zeros(2, requires_grad=True)]}])
    assert opt.param_groups[0]["nesterov"] is False and opt.param_groups[0]["momentum"] == 0


def test_adam_with_zero_beta1_is_valid():
    assert P.build(TrainParams, {"optimizer": "adam", "momentum": 0}).momentum == 0
