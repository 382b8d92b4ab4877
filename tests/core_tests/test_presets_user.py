"""User presets (issue 17): saved into WORKBENCH_PRESETS beside the shipped ones, found by name at once
(the cache is cleared by a save), never allowed a shipped name; a broken or foreign file in the folder is
skipped with a warning line naming it, and `workbench presets` still lists the rest. `workbench presets
NAME` shows one preset in full: its target, what it measured and on which references."""

from __future__ import annotations

import json

import pytest

from workbench.cli import main
from workbench.core.errors import WorkbenchError
from workbench.core.presets import (
    get_preset,
    is_user_preset,
    list_presets,
    preset_file,
    preset_stages,
    preset_warnings,
    reload_presets,
    save_user_preset,
)

MINE = {"name": "my-dns", "model": "mlp_tiny", "dataset": "tiny", "source": "mine", "description": "a test",
        "method": "dns", "params": {"c_rate": 0.5}, "train": {"epochs": 1}}
MEASURED = {
    "name": "measured-one", "model": "lenet300", "dataset": "mnist", "source": "Ullrich et al. 2017",
    "description": "with a spread", "huffman": True, "method": "sws", "params": {"tau": 0.005},
    "train": {"epochs": 50},
    "target": {"ratio": 64.0, "error": 1.94},
    "measured": {"references": [{"model": "lenet300", "pretrain_seed": s, "accuracy": a}
                                for s, a in ((0, 0.9821), (1, 0.9834), (2, 0.9817))],
                 "n": 3, "accuracy_mean": 0.9829, "accuracy_std": 0.0005, "ratio_mean": 72.4, "ratio_std": 3.1,
                 "error_mean": 1.71, "command": "workbench run --preset sws-lenet300 --repeats 3",
                 "date": "2026-11-20"},
    "needs_reference": "tuned on the checkpoint ref.pt (lenet300): its knobs were fitted to that reference",
}



def test_a_saved_preset_loads_beside_the_shipped_ones(folder):
    shipped = {p["name"] for p in list_presets()}          # read (and cached) before the save
    path = save_user_preset(MINE)
    assert path == folder / "my-dns.json" and json.loads(path.read_text())["params"] == {"c_rate": 0.5}
    assert [p.name for p in folder.iterdir()] == ["my-dns.json"]          # no temporary file left over
    names = {p["name"] for p in list_presets()}
    assert names == shipped | {"my-dns"}
    assert get_preset("my-dns")["method"] == "dns" and is_user_preset("my-dns") and preset_file("my-dns") == path
    assert not is_user_preset("sws-lenet300")
    [stage] = preset_stages("my-dns")
    assert (stage.method, stage.params, stage.train) == ("dns", {"c_rate": 0.5}, {"epochs": 1})


def test_saving_over_a_user_preset_needs_replace(folder):
    save_user_preset(MINE)
    with pytest.raises(WorkbenchError, match="a user preset named 'my-dns' exists"):
        save_user_preset({**MINE, "description": "second"})
    save_user_preset({**MINE, "description": "second"}, replace=True)
    assert get_preset("my-dns")["description"] == "second"


@pytest.mark.parametrize("name, words", [("sws-lenet5", "is the name of a shipped preset"),
                                         ("../escape", "use letters, digits"), ("", "use letters, digits"),
                                         ("promote", "cannot be a preset's name")])
def test_names_a_user_preset_cannot_take(folder, name, words):
    with pytest.raises(WorkbenchError, match=words):
        save_user_preset({**MINE, "name": name})
    assert not folder.exists() or not list(folder.iterdir())


def test_a_hand_written_file_with_a_shipped_name_is_skipped_and_the_shipped_one_kept(folder):
    folder.mkdir()
    shipped = dict(get_preset("sws-lenet5"))
    (folder / "clash.json").write_text(json.dumps({**MINE, "name": "sws-lenet5"}))
    reload_presets()
    assert get_preset("sws-lenet5")["source"] == shipped["source"]
    [warning] = preset_warnings()
    assert "clash.json" in warning and "shipped preset's name" in warning


def test_broken_and_foreign_files_are_skipped_with_a_warning(folder, capsys):
    folder.mkdir()
    (folder / "broken.json").write_text('{"name": "half", ')
    (folder / "foreign.json").write_text(json.dumps({"compilerOptions": {"strict": True}}))
    (folder / "list.json").write_text("[1, 2]")
    (folder / "good.json").write_text(json.dumps(MINE))
    reload_presets()
    names = {p["name"] for p in list_presets()}
    assert "my-dns" in names and "half" not in names
    warnings = preset_warnings()
    assert len(warnings) == 3
    assert any("broken.json" in w and "not valid JSON" in w for w in warnings)
    assert any("foreign.json" in w and "no 'name'" in w for w in warnings)
    assert any("list.json" in w and "not a JSON object" in w for w in warnings)
    assert main(["presets"]) == 0
    out, err = capsys.readouterr()
    assert "my-dns" in out and "sws-lenet300" in out
    assert sum(line.startswith("warning: skipped user preset file ") for line in err.splitlines()) == 3
    with pytest.raises(WorkbenchError, match=r"unknown preset 'half'.*3 user preset file\(s\) skipped"):
        get_preset("half")


def test_presets_name_shows_target_measured_and_references(folder, capsys):
    save_user_preset(MEASURED)
    assert main(["presets"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("measured-one "))
    assert "3 refs: 1.71±0.05% err, 72.4±3.1x" in row
    assert main(["presets", "measured-one"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"measured-one  (user preset, {folder / 'measured-one.json'})")
    for text in ("lenet300 on mnist: sws, Huffman coded", "1. sws: tau=0.005", "train: epochs=50",
                 "target (paper): error 1.94%, storage 64x",
                 "measured here (3 runs on 3 references): error 1.71±0.05%, storage 72.4±3.1x",
                 "accuracy 98.29±0.05%", "command: workbench run --preset sws-lenet300 --repeats 3",
                 "lenet300, pretrained with seed 1: 98.34% accuracy",
                 "needs reference: tuned on the checkpoint ref.pt"):
        assert text in out, text
    assert main(["presets", "--show", "measured-one", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["measured"]["n"] == 3


def test_presets_listing_and_json_keep_their_form(folder, capsys):
    assert main(["presets", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {p["name"] for p in listed} == {p["name"] for p in list_presets()}
    assert main(["presets", "no-such-preset"]) == 2
    assert "unknown preset 'no-such-preset'" in capsys.readouterr().err
    assert main(["presets", "a", "b"]) == 2
    assert "give one preset NAME to show" in capsys.readouterr().err


def test_a_params_ratio_is_named_as_such():
    """Han 2015 and Guo 2016 count kept parameters, Ullrich 2017 and Deep Compression bits: a preset says
    which ratio its target and its measurement give, and the text names it."""
    from workbench.core.preset_text import describe, spread_text

    preset = {"name": "p", "model": "lenet300", "dataset": "mnist", "method": "magnitude",
              "stages": [{"method": "magnitude", "params": {}, "train": {}}],
              "target": {"ratio": 12, "error": 1.59, "ratio_of": "params"},
              "measured": {"references": [{"model": "lenet300", "pretrain_seed": s, "accuracy": 0.986} for s in (1, 2, 3)],
                           "n": 3, "accuracy_mean": 0.9847, "accuracy_std": 0.0001, "ratio_mean": 12.6,
                           "ratio_std": 0.05, "ratio_of": "params"}}
    assert spread_text(preset) == "3 refs: 1.53±0.01% err, 12.6±0.1x params"
    text = describe(preset)
    assert "target (paper): error 1.59%, parameters 12x" in text and "parameters 12.6±0.1x" in text
    preset["measured"].pop("ratio_of")
    assert spread_text(preset).endswith(", 12.6±0.1x") and "storage 12.6±0.1x" in describe(preset)
