"""Every knob of every method, every training knob and every run setting survives declaration ->
CLI string -> parse -> run file -> "Copy CLI command" (the run file's `cli` attribute) -> parse unchanged,
with values chosen to break any rounding (0.0123456789, 1/3, long per-layer maps)."""

from __future__ import annotations

import shlex

import pytest

from workbench.cli import build_parser, config_from_args
from workbench.core import params as P
from workbench.core.config import RunConfig, RunSettings, StageConfig, TrainParams
from workbench.core.errors import WorkbenchError
from workbench.core.store import read_run
from workbench.engine.configure import cli_command, complete
from workbench.methods import get_method, method_keys

FRACTIONS = (0.0123456789012345, 1 / 3, 0.7071067811865476, 0.5)


def _candidates(spec: P.Spec):
    """Values for one knob that differ from its default, the awkward ones first."""
    k, d = spec.knob, spec.default
    if spec.type is bool:
        return [not d]
    if k.choices:
        return [c for c in k.choices if c != d]
    if spec.type is str:
        return []          # free text (layer lists, widths) has its own parser; its default still travels
    lo = k.min if k.min is not None else -1000.0
    hi = k.max if k.max is not None else 1000.0
    if spec.type is int:
        return [v for v in (int(d) + 7, int(d) + 1, int(lo) + 3, int(hi) - 1, 2**31 - 5) if lo <= v <= hi]
    if k.log and lo >= 0:    # rates: stay in the knob's decade, with many digits
        base = d if d else (lo or 1e-4)
        values = [base * 1.0123456789, base / 3, base * 0.7071067811865476]
    else:
        values = [lo + (hi - lo) * f for f in FRACTIONS]
    values = [v for v in values if lo <= v <= hi and v != d]
    if spec.type is P.LayerMap:
        return [P.LayerMap({"fc1": v, "fc2": w}) for v, w in zip(values, values[1:] + values[:1])]
    return values


def _groups():
    return [(key, "params", get_method(key).Params) for key in method_keys()] + [
        ("dns", "train", TrainParams), ("plain", "settings", RunSettings)]


def _knob_cases():
    """(method, group, values) for each knob: the first awkward value its declaration accepts, alone or,
    where a cross-field rule ties it to another knob (DNS's a_k and b_k), with a partner."""
    cases = []
    for method, group, cls in _groups():
        maps = [s.name for s in P.specs(cls) if s.type is P.LayerMap]
        for spec in P.specs(cls):
            chosen = {}
            for value in _candidates(spec):
                partners = [{m: value} for m in maps if m != spec.name] if spec.name in maps else []
                partners += [{s.name: c} for s in P.specs(cls) if s.knob.choices and s.name != spec.name
                             for c in s.knob.choices]       # e.g. funhash's ratio_layers needs space=per_layer
                tries = [{spec.name: value}] + [{spec.name: value, **other} for other in partners]
                for values in tries:
                    try:
                        P.build(cls, values)
                    except WorkbenchError:
                        continue
                    chosen = values
                    break
                if chosen:
                    break
            cases.append(pytest.param(method, group, spec.name, chosen, id=f"{method}-{group}-{spec.name}"))
    return cases


def _config(method: str, group: str, values: dict) -> RunConfig:
    stage = StageConfig(method)
    settings = {}
    {"params": stage.params, "train": stage.train, "settings": settings}[group].update(values)
    return complete(RunConfig(dataset="tiny", model="mlp_tiny", stages=[stage], **settings))


def _parse(command: str) -> RunConfig:
    argv = shlex.split(command)
    assert argv[:2] == ["workbench", "run"]
    return config_from_args(build_parser().parse_args(argv[1:]))


def _same(a: RunConfig, b: RunConfig) -> None:
    assert [(s.method, s.params, s.train) for s in a.stages] == [(s.method, s.params, s.train) for s in b.stages]
    assert a.settings() == b.settings()
    assert (a.model, a.dataset, a.checkpoint) == (b.model, b.dataset, b.checkpoint)


@pytest.mark.parametrize("method, group, name, values", _knob_cases())
def test_every_knob_round_trips(method, group, name, values):
    config = _config(method, group, values)
    if values:        # the awkward value really is in the config, exactly
        where = {"params": config.stages[0].params, "train": config.stages[0].train}.get(group)
        got = where[name] if where is not None else getattr(config, name)
        assert got == values[name]
        assert isinstance(got, dict) if isinstance(values[name], dict) else type(got) is type(values[name])
    command = cli_command(config)
    parsed = _parse(command)
    _same(config, parsed)
    # The run file stores the config as JSON and the command as text (runner.execute); both come back.
    stored = RunConfig.from_json(parsed.to_json())
    _same(config, stored)
    assert cli_command(stored) == command
    _same(config, _parse(cli_command(stored)))


def test_every_knob_has_an_awkward_case():
    """The generator above found a non-default value for every numeric, boolean and choice knob."""
    missing = [p.id for p in _knob_cases() if not p.values[3]]
    specs = {f"{m}-{g}-{s.name}": s for m, g, cls in _groups() for s in P.specs(cls)}
    assert all(specs[m].type is str and not specs[m].knob.choices for m in missing), missing


def test_a_pipeline_round_trips_with_stage_numbers():
    config = complete(RunConfig(dataset="tiny", model="mlp_tiny", huffman=True, seed=7, stages=[
        StageConfig("dns", {"a_k": {"fc1": 0.0123456789}, "b_k": {"fc1": 0.0223456789}, "gamma": 1 / 3},
                    {"epochs": 3}),
        StageConfig("kmeans", {"bits_fc": 3}, {"lr": 0.0123456789})]))
    command = cli_command(config)
    assert "1.a_k=fc1=0.0123456789" in command and "2.lr=0.0123456789" in command
    _same(config, _parse(command))


def test_formatting_is_exact_and_short():
    assert P.format_value(0.0123456789) == "0.0123456789"     # %g would write 0.0123457
    assert P.format_value(5e-4) == "0.0005" and P.format_value(4.0) == "4"
    assert P.format_value({"fc1": 6.5, "fc2": 1 / 3}) == "fc1=6.5,fc2=0.3333333333333333"
    assert P.format_value(True) == "true"
    spec = P.Spec("seed", int, 0, P.Knob("Seed"))
    assert P.parse_text(spec, str(2**62 + 1)) == 2**62 + 1   # no detour through a float
    assert P.parse_text(spec, "1e3") == 1000


def test_gui_and_cli_store_the_same_complete_config(tmp_path):
    """Both entry points end in `complete`: a config with one knob set stores every knob."""
    cli = _parse("workbench run --model mlp_tiny --dataset tiny --method dns --set gamma=0.001")
    gui = complete(RunConfig(dataset="tiny", model="mlp_tiny", stages=[StageConfig(
        "dns", P.to_dict(P.build(get_method("dns").Params, {"gamma": 0.001})), P.to_dict(TrainParams()))]))
    _same(cli, gui)
    assert set(cli.stages[0].params) == {s.name for s in P.specs(get_method("dns").Params)}
    assert set(cli.stages[0].train) == {s.name for s in P.specs(TrainParams)}


def test_a_real_run_file_keeps_the_exact_command(tmp_path):
    """A short real run: the run file's config and its `cli` attribute (what "Copy CLI command" copies)
    repeat the run exactly, the per-layer value of the issue included."""
    from workbench.engine.runner import execute

    config = RunConfig(dataset="tiny", model="mlp_tiny", out_dir=str(tmp_path), device="cpu",
                       pretrain_epochs=1, train_subset=256, stages=[StageConfig(
                           "dns", {"c_rate_layers": {"fc1": 0.0123456789}}, {"epochs": 1})])
    events = list(execute(config))
    run = read_run(events[-1].run_path)
    assert run.attrs["status"] == "completed", run.attrs.get("error")
    assert "c_rate_layers=fc1=0.0123456789" in run.attrs["cli"]
    again = _parse(run.attrs["cli"])
    stored = RunConfig.from_json(run.attrs["config"])
    _same(stored, again)
    assert stored.stages[0].params["c_rate_layers"] == {"fc1": 0.0123456789}
    assert len(stored.stages[0].params) == len(P.specs(get_method("dns").Params))   # complete
