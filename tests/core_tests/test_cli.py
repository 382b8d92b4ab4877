"""The command line contract (DESIGN.md, "Command line"): listings, run --json, compare, export, and
one-line errors (no traceback) on bad input, the latter in real subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import core_helpers as H
import h5py
import numpy as np
import pytest
import torch

from workbench.cli import main
from workbench.core.config import RunConfig
from workbench.core.store import read_model, read_run
from workbench.engine.export import load_compact, write_compact, write_dense
from workbench.methods import get_method, method_keys
from workbench.models import zoo


def _json_last_line(text: str):
    return json.loads(text.strip().splitlines()[-1])


# --- listings ------------------------------------------------------------------------------------

def test_methods_json(capsys):
    assert main(["methods", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["key"] for m in doc["methods"]] == method_keys()
    for m in doc["methods"]:
        assert {"key", "label", "summary", "params"} <= set(m)
        for p in m["params"]:
            assert {"name", "default", "min", "max", "help", "type"} <= set(p)
    dns = next(m for m in doc["methods"] if m["key"] == "dns")
    c_rate = next(p for p in dns["params"] if p["name"] == "c_rate")
    assert (c_rate["default"], c_rate["min"], c_rate["max"]) == (3.0, -5.0, 20.0)
    assert "epochs" in {p["name"] for p in doc["train"]}


def test_methods_text_lists_every_method(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for key in method_keys():
        assert key in out


def test_presets_json(capsys):
    assert main(["presets", "--json"]) == 0
    presets = json.loads(capsys.readouterr().out)
    assert isinstance(presets, list)
    for p in presets:
        assert isinstance(p, dict)
        for key in ("name", "method", "model"):
            assert isinstance(p[key], str) and p[key], (p, key)


# --- run / compare -------------------------------------------------------------------------------

def test_run_json_in_process(tmp_path, capsys):
    rc = main(["run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "magnitude",
               "--set", "q_fc=1.5", "--epochs", "2", "--pretrain-epochs", "3", "--device", "cpu",
               "--out", str(tmp_path / "runs"), "--name", "cli-mag", "--json", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    result = _json_last_line(out)
    assert {"run", "status", "test_accuracy", "param_ratio", "storage_ratio"} <= set(result)
    assert result["status"] == "completed"
    assert Path(result["run"]) == tmp_path / "runs" / "cli-mag.h5"
    run = read_run(result["run"])
    for key in ("test_accuracy", "param_ratio", "storage_ratio"):
        assert result[key] == pytest.approx(run.summary[key])
    assert result["param_ratio"] > 1
    # --set values reached the method, --epochs the training
    cfg = run.config
    assert float(cfg["stages"][0]["params"]["q_fc"]) == 1.5
    assert cfg["stages"][0]["train"]["epochs"] == 2


def test_compare_table_and_json(dns_run, magnitude_run, capsys):
    paths = [dns_run[1], magnitude_run[1]]
    assert main(["compare", *paths]) == 0
    table = capsys.readouterr().out
    assert "dns" in table and "magnitude" in table
    assert "dns-mlp" in table and "mag-cnn" in table          # run names
    assert main(["compare", *paths, "--json"]) == 0
    doc = _json_last_line(capsys.readouterr().out)
    rows = doc["runs"]
    assert [r["method"] for r in rows] == ["dns", "magnitude"]
    for row, (events, path) in zip(rows, (dns_run, magnitude_run)):
        s = events[-1].summary
        assert row["status"] == "completed" and row["run"] == path
        assert row["param_ratio"] == pytest.approx(s["param_ratio"])
        assert row["storage_ratio"] == pytest.approx(s["storage_ratio"])
        assert row["test_accuracy"] == pytest.approx(s["test_accuracy"])


# --- export --------------------------------------------------------------------------------------

def _stored(path):
    state, attrs = read_model(path)
    model = zoo.build_model(attrs["model_key"], tuple(attrs["input_shape"]), int(attrs["num_classes"]))
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return model.eval(), state, attrs


def _check_compact(out: Path, info: dict, events, path):
    assert out.is_file()
    size = out.stat().st_size
    assert info["size_bytes"] == size
    s = events[-1].summary
    assert info["accounted_bytes"] == pytest.approx(s["bits"] / 8)
    # DESIGN.md: the compact size agrees with the accounting within a few percent plus a fixed header
    assert abs(size - s["bits"] / 8) <= 0.05 * s["bits"] / 8 + info["header_bytes"]
    assert size < s["dense_bits"] / 8                     # it really is smaller than fp32
    model = load_compact(out)
    x, y = H.tiny_test_set()
    assert H.accuracy(model, x, y) == pytest.approx(s["test_accuracy"])
    reference, _, _ = _stored(path)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))       # values and zeros restored bit for bit


def _check_dense(out: Path, path):
    from safetensors.torch import load_file

    assert out.is_file()
    state = load_file(str(out))
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["model"] == "mlp_tiny"
    model = zoo.build_model("mlp_tiny", tuple(sidecar["input_shape"]), sidecar["num_classes"])
    model.load_state_dict(state, strict=True)             # plain names: no _orig/_mask
    reference, stored, _ = _stored(path)
    for k, v in stored.items():                            # zeros materialised as in the run file
        assert np.array_equal(state[k].numpy(), v)
    x, _ = H.tiny_test_set()
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference(x))


@pytest.mark.parametrize("which", ["dns_run", "magnitude_run"])
def test_compact_format_size_and_accuracy(which, request, tmp_path):
    events, path = request.getfixturevalue(which)
    model, _, attrs = _stored(path)
    cfg = RunConfig.from_json(attrs["config"])
    method = get_method(cfg.stages[-1].method).from_values(cfg.stages[-1].params)
    out = tmp_path / "model.cwb"
    result = write_compact(model, method, attrs, out)
    info = {"size_bytes": result.size_bytes, "accounted_bytes": result.accounted_bytes,
            "header_bytes": result.header_bytes}
    _check_compact(out, info, events, path)


def test_dense_format_loads_with_stock_tools(dns_run, tmp_path):
    _, path = dns_run
    model, _, attrs = _stored(path)
    out = tmp_path / "model.safetensors"
    write_dense(model, attrs, out)
    _check_dense(out, path)


@pytest.mark.parametrize("which", ["dns_run", "magnitude_run"])
def test_cli_export_compact(which, request, tmp_path, capsys):
    events, path = request.getfixturevalue(which)
    out = tmp_path / "model.cwb"
    assert main(["export", path, "--format", "compact", "--out", str(out), "--json"]) == 0
    info = _json_last_line(capsys.readouterr().out)
    assert Path(info["path"]) == out
    _check_compact(out, info, events, path)


def test_cli_export_dense(dns_run, tmp_path, capsys):
    _, path = dns_run
    out = tmp_path / "model.safetensors"
    assert main(["export", path, "--format", "dense", "--out", str(out)]) == 0
    _check_dense(out, path)


# --- bad input, each in a real subprocess --------------------------------------------------------

RUN = ["run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "dns", "--pretrain-epochs", "1",
       "--epochs", "1", "--device", "cpu"]

CASES = {
    "missing_checkpoint": (["run", "--checkpoint", "{tmp}/nope.pt", "--dataset", "tiny", "--method", "dns",
                            "--out", "{tmp}/o1"], "nope.pt"),
    "foreign_checkpoint": (["run", "--checkpoint", "{tmp}/foreign.pt", "--dataset", "tiny", "--method",
                            "dns", "--out", "{tmp}/o2"], "foreign.pt"),
    "unknown_method": ([*RUN[:5], "--method", "nosuch", "--out", "{tmp}/o3"], "nosuch"),
    "unknown_set_name": ([*RUN, "--set", "nosuch=1", "--out", "{tmp}/o4"], "nosuch"),
    "a_k_above_b_k": ([*RUN, "--set", "a_k=fc1=0.5", "--set", "b_k=fc1=0.1", "--out", "{tmp}/o5"], "fc1"),
    "out_under_a_file": ([*RUN, "--out", "{tmp}/afile/x"], "afile"),
    "unknown_dataset": (["run", "--model", "mlp_tiny", "--dataset", "nosuchset", "--method", "dns",
                         "--out", "{tmp}/o6"], "nosuchset"),
    "out_of_range": ([*RUN, "--set", "c_rate=99", "--out", "{tmp}/o7"], "c_rate"),
    "compare_corrupt": (["compare", "{tmp}/corrupt.h5"], "corrupt.h5"),
    "export_corrupt": (["export", "{tmp}/corrupt.h5", "--format", "compact", "--out", "{tmp}/x.cwb"],
                       "corrupt.h5"),
    "compare_missing": (["compare", "{tmp}/missing.h5"], "missing.h5"),
    "export_not_a_run": (["export", "{tmp}/other.h5", "--format", "dense", "--out", "{tmp}/x.st"],
                         "other.h5"),
    # damaged run files that pass the first checks
    "compare_no_metrics_group": (["compare", "{tmp}/stub.h5"], "stub.h5"),
    "export_model_missing_tensor": (["export", "{tmp}/broken-model.h5", "--format", "compact", "--out",
                                     "{tmp}/y.cwb"], "broken-model.h5"),
}
OK_RUN = ["run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "magnitude", "--set", "q_fc=1.5",
          "--pretrain-epochs", "3", "--epochs", "2", "--device", "cpu", "--out", "{tmp}/ok", "--json"]


# The bad-input cases share one interpreter start: a driver imports the package once, then forks one
# child process per case that runs the console script's entry point (`workbench.cli.entry`) with its own
# argv, stdout and stderr, and reports the child's exit status; an exception escaping the entry point is
# printed with its traceback and exits 1, as the interpreter would. A full `python -m workbench` start
# costs ~2 s of imports, too much for 14 cases on 2 cores; `ok_run` and the SIGINT test use real starts.
DRIVER = r"""
import json, os, sys, traceback
tmp, cases = sys.argv[1], json.loads(sys.argv[2])
import torch, workbench.cli
results = {}
for name, argv in cases.items():
    out, err = os.path.join(tmp, name + ".out"), os.path.join(tmp, name + ".err")
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
            os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            sys.argv = ["workbench", *argv]
            try:
                workbench.cli.entry()
                code = 0
            except SystemExit as exc:
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    results[name] = [os.waitstatus_to_exitcode(status), open(out).read(), open(err).read()]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory, cache_root, dns_run):
    tmp = tmp_path_factory.mktemp("cli")
    torch.save(torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)).state_dict(),
               tmp / "foreign.pt")
    (tmp / "afile").write_text("a regular file, so nothing can be created under it\n")
    (tmp / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    with h5py.File(tmp / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    with h5py.File(tmp / "stub.h5", "w") as f:          # a run file cut short after its first attrs
        f.attrs["schema_version"] = 1
        f.attrs["status"] = "running"
    shutil.copy(dns_run[1], tmp / "broken-model.h5")
    with h5py.File(tmp / "broken-model.h5", "a") as f:
        del f["model/fc1.weight"]

    def argv(args):
        return [a.replace("{tmp}", str(tmp)) for a in args]

    env = H.cli_env(cache_root)
    ok = subprocess.Popen(H.cli_cmd(*argv(OK_RUN)), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    cases = json.dumps({name: argv(args) for name, (args, _) in CASES.items()})
    driver = subprocess.run([sys.executable, "-c", DRIVER, str(tmp), cases], env=env, capture_output=True,
                            text=True, timeout=300)
    assert driver.returncode == 0, driver.stderr
    results = {k: tuple(v) for k, v in json.loads(driver.stdout.strip().splitlines()[-1]).items()}
    out, err = ok.communicate(timeout=300)
    results["ok_run"] = (ok.returncode, out, err)
    return results


def _check_one_line_error(result, word):
    rc, out, err = result
    assert rc != 0, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert word in lines[0]


@pytest.mark.parametrize("case", [c for c in CASES if c not in ("compare_no_metrics_group",
                                                                 "export_model_missing_tensor")])
def test_bad_input_exits_with_one_line(case, cli_results):
    _check_one_line_error(cli_results[case], CASES[case][1])


def test_compare_run_file_without_groups(cli_results):
    _check_one_line_error(cli_results["compare_no_metrics_group"], "stub.h5")


def test_export_run_file_with_incomplete_model(cli_results):
    _check_one_line_error(cli_results["export_model_missing_tensor"], "broken-model.h5")


def test_real_cli_run_exit_code_and_json(cli_results, tmp_path_factory):
    rc, out, err = cli_results["ok_run"]
    assert rc == 0, err
    assert "Traceback" not in err
    result = _json_last_line(out)
    assert result["status"] == "completed"
    assert Path(result["run"]).is_file()
    assert result["param_ratio"] > 1 and result["storage_ratio"] > 1
    assert 0 <= result["test_accuracy"] <= 1


def test_console_script_is_installed():
    exe = shutil.which("workbench")
    if exe is None:
        pytest.skip("the workbench console script is not on PATH")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "workbench" in proc.stdout
