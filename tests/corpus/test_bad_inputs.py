"""Bad inputs as the command line meets them: one table, each case building its input in a fresh folder and
running `workbench.cli.main` in-process. Every case expects exit 2 and exactly one line on stderr (no
traceback) matching its message, and leaves its folder exactly as it was: no run file, no export, no
temporary, no marker of code that ran, no file changed."""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from corpus import builders as B
from workbench import cli


@dataclass
class Ctx:
    """What a case builds in: its folder (snapshotted), the session's finished run and graph files."""

    tmp: Path
    finished: Path
    graphs: dict
    monkeypatch: pytest.MonkeyPatch

    @property
    def runs(self) -> Path:              # every `run` case's --out
        return self.tmp / "runs"

    @property
    def exports(self) -> Path:
        return self.tmp / "exports"

    def path(self, name: str) -> Path:
        return self.tmp / name


@dataclass
class Case:
    name: str
    argv: Callable[[Ctx], list]          # the command line, after building what it needs
    message: str                         # regex searched in the one stderr line
    code: int = 2
    needs: str = ""                      # a known miss: the change it needs, in a file outside this task

    @property
    def param(self):
        marks = [pytest.mark.xfail(strict=True, reason=self.needs)] if self.needs else []
        return pytest.param(self, id=self.name, marks=marks)


def run(ctx: Ctx, *extra, model: str | None = "mlp_tiny", dataset: str | None = "tiny",
        method: str | None = "magnitude") -> list:
    """`workbench run` on tiny settings that would complete in seconds, plus `extra`."""
    args = ["run", "--epochs", "1", "--pretrain-epochs", "1", "--device", "cpu", "--out", ctx.runs, "--quiet"]
    for flag, value in (("--model", model), ("--dataset", dataset), ("--method", method)):
        if value is not None:
            args += [flag, value]
    return args + list(extra)


def export(ctx: Ctx, run_file, fmt: str = "dense", out=None) -> list:
    return ["export", run_file, "--format", fmt, "--out", out or ctx.exports / f"model.{fmt}"]


def ckpt(ctx: Ctx, path: Path, *extra, model: str | None = "mlp_tiny") -> list:
    return run(ctx, "--checkpoint", path, *extra, model=model)


def saved(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def read_only(ctx: Ctx) -> Path:
    """A folder nothing can be written into: chmod, and (as root, where chmod does not stop writes) every
    mkdir and open for writing there refused as the file system would."""
    folder = ctx.path("readonly")
    folder.mkdir()
    os.chmod(folder, 0o555)
    if os.geteuid() == 0:
        real_mkdir, real_open = os.mkdir, os.open

        def inside(path) -> bool:
            return Path(path).resolve().is_relative_to(folder.resolve())

        def mkdir(path, *a, **k):
            if inside(path):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_mkdir(path, *a, **k)

        def open_(path, flags, *a, **k):
            if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, flags, *a, **k)

        ctx.monkeypatch.setattr(os, "mkdir", mkdir)
        ctx.monkeypatch.setattr(os, "open", open_)
    return folder


def no_onnx(ctx: Ctx) -> None:
    ctx.monkeypatch.setitem(sys.modules, "onnx", None)        # `import onnx` raises ImportError


def _p(ctx, name):
    return ctx.path(name)


CASES = [
    # --- impossible parameters ------------------------------------------------------------------
    Case("unknown-method", lambda c: run(c, method="zzz"), r"unknown method 'zzz'; known: .*magnitude"),
    Case("unknown-method-in-pipeline", lambda c: run(c, method="magnitude,zzz"), r"unknown method 'zzz'"),
    Case("unknown-knob", lambda c: run(c, "--set", "zzz=1"), r"unknown parameter 'zzz' for magnitude"),
    Case("knob-above-max", lambda c: run(c, "--set", "q_fc=99"), r"q_fc.*99.*20"),
    Case("knob-not-a-number", lambda c: run(c, "--set", "q_fc=abc"), r"q_fc: cannot read 'abc' as float"),
    Case("knob-nan", lambda c: run(c, "--set", "q_fc=nan"), r"q_fc"),
    Case("knob-without-value", lambda c: run(c, "--set", "q_fc"), r"q_fc"),
    Case("negative-epochs", lambda c: run(c, "--epochs", "-1"), r"epochs.*-1"),
    Case("sparsity-above-1", lambda c: run(c, "--set", "pi_zero=1.5", method="sws"), r"pi_zero.*1\.5"),
    Case("ratio-above-1", lambda c: run(c, "--set", "ratio=2", method="hashed"), r"ratio.*2"),
    Case("energy-zero", lambda c: run(c, "--set", "energy=0", method="svd"), r"energy.*0"),
    Case("negative-learning-rate", lambda c: run(c, "--set", "lr=-1"), r"lr.*-1"),
    Case("batch-size-zero", lambda c: run(c, "--set", "batch_size=0"), r"batch_size.*0"),
    Case("unknown-optimizer", lambda c: run(c, "--set", "optimizer=zzz"), r"optimizer.*zzz"),
    Case("dns-a-above-b", lambda c: run(c, "--set", "a_k=fc1=0.5", "--set", "b_k=fc1=0.1", method="dns"),
         r"a_k.*b_k|b_k.*a_k"),
    Case("unknown-stage", lambda c: run(c, "--set", "3.bits_fc=4", method="magnitude,kmeans"),
         r"'3' is not one stage of magnitude\+kmeans"),
    Case("ambiguous-knob", lambda c: run(c, "--set", "prune_bias=true", method="magnitude,dns"),
         r"several stages of magnitude\+dns have 'prune_bias'"),
    Case("unknown-layer", lambda c: run(c, "--set", "q_layers=fc9=2"),
         r"^error: q_layers names unknown layer\(s\) fc9; layers: fc1, fc2$"),
    Case("unknown-layer-later-stage", lambda c: run(c, "--set", "2.bits_layers=fc9=4", method="magnitude,kmeans"),
         r"stage 2 \(kmeans\): bits_layers names unknown layer\(s\) fc9; layers: fc1, fc2"),
    Case("unknown-layer-name-list", lambda c: run(c, "--set", "layers=fc1,fc9", method="svd"),
         r"layers names unknown layer\(s\) fc9; layers: fc1, fc2"),
    Case("unknown-layer-user-model", lambda c: run(c, "--set", "q_layers=fc9=2", model=str(c.graphs["net.pt2"])),
         r"q_layers names unknown layer\(s\) fc9; layers: fc1, fc2"),
    Case("unknown-layer-zoo-checkpoint", lambda c: ckpt(c, saved(_p(c, "w.pt"), B.zoo_state()), "--set",
                                                        "q_layers=fc9=2", model=None),
         r"q_layers names unknown layer\(s\) fc9"),
    Case("layer-map-without-value", lambda c: run(c, "--set", "q_layers=fc1"), r"q_layers"),
    Case("layer-map-value-above-max", lambda c: run(c, "--set", "q_layers=fc1=99"), r"q_layers.*99"),
    Case("unknown-preset", lambda c: run(c, "--preset", "zzz", method=None), r"preset.*zzz"),
    Case("preset-of-another-method", lambda c: run(c, "--preset", "dns-lenet300", method="kmeans"),
         r"preset dns-lenet300 is for dns, not kmeans"),
    Case("no-method", lambda c: run(c, method=None), r"give --method KEY or --preset NAME"),
    Case("no-dataset", lambda c: run(c, dataset=None), r"give --dataset"),
    Case("no-model", lambda c: run(c, model=None), r"give --model .* or --checkpoint"),
    Case("negative-seed", lambda c: run(c, "--seed", "-1"), r"seed.*-1"),
    Case("negative-subset", lambda c: run(c, "--train-subset", "-5"), r"train_subset.*-5"),
    Case("device-not-here", lambda c: run(c, "--device", "mps"), r"mps"),
    Case("unknown-device", lambda c: run(c, "--device", "tpu"), r"device.*tpu"),
    Case("out-is-a-file", lambda c: run(c, "--out", B.text_file(_p(c, "runs-file"))), r"runs-file"),
    # --- models -----------------------------------------------------------------------------------
    Case("unknown-model", lambda c: run(c, model="zzz"), r"zzz"),
    Case("model-file-missing", lambda c: run(c, model=str(_p(c, "gone.pt2"))), r"gone\.pt2"),
    Case("python-model-without-opt-in", lambda c: run(c, model=f"{B.python_model(_p(c, 'net.py'), _p(c, 'ran'))}:Net"),
         r"net\.py:Net is Python code.*--trust-code"),
    Case("nan-pt2-model", lambda c: run(c, model=str(c.graphs["nan.pt2"])),
         r"nan\.pt2 holds NaN/inf weights: .*12 NaN values"),
    Case("nan-onnx-model", lambda c: run(c, model=str(c.graphs["nan.onnx"])),
         r"nan\.onnx holds NaN/inf weights: .*12 NaN values"),
    # --- data sets --------------------------------------------------------------------------------
    Case("unknown-dataset", lambda c: run(c, dataset="zzz"), r"zzz"),
    Case("empty-folder-dataset", lambda c: run(c, dataset=f"folder:{_mkdir(_p(c, 'empty'))}"), r"empty"),
    Case("missing-folder-dataset", lambda c: run(c, dataset=f"folder:{_p(c, 'nowhere')}"), r"nowhere"),
    Case("mnist-nowhere", lambda c: run(c, "--data-dir", _mkdir(_p(c, "data")), dataset="mnist"),
         r"train-images-idx3-ubyte"),
    Case("idx-swapped", lambda c: run(c, "--data-dir", B.idx_folder(_p(c, "idx"), "swapped"), dataset="mnist"),
         r"train-images-idx3-ubyte: expected IDX images .*swapped"),
    Case("idx-labels-out-of-range", lambda c: run(c, "--data-dir", B.idx_folder(_p(c, "idx"), "labels"),
                                                  dataset="mnist"), r"outside 0\.\.9"),
    Case("idx-truncated", lambda c: run(c, "--data-dir", B.idx_folder(_p(c, "idx"), "truncated"),
                                        dataset="mnist"), r"t10k-images-idx3-ubyte.*truncated"),
    Case("nan-pixels", lambda c: run(c, dataset=f"arrays:{B.arrays_file(_p(c, 'x.npz'), x_train=_nan_images())}"),
         r"x_train holds 3 NaN values"),
    Case("labels-out-of-range", lambda c: run(c, dataset=f"arrays:{B.arrays_file(_p(c, 'x.npz'), y_test=np.array([0, 1, 2, -1]))}"),
         r"y_test holds label -1"),
    Case("empty-test-split", lambda c: run(c, dataset=f"arrays:{B.arrays_file(_p(c, 'x.npz'), x_test=np.zeros((0, 6, 5), np.float32), y_test=np.zeros(0, np.int64))}"),
         r"no test samples"),
    Case("arrays-missing", lambda c: run(c, dataset=f"arrays:{_p(c, 'gone.npz')}"), r"gone\.npz"),
    Case("arrays-text-file", lambda c: run(c, dataset=f"arrays:{B.text_file(_p(c, 'x.npz'))}"), r"x\.npz"),
    Case("arrays-npy", lambda c: run(c, dataset=f"arrays:{_npy(_p(c, 'x.npy'))}"), r"x\.npy"),
    # --- checkpoints ------------------------------------------------------------------------------
    Case("checkpoint-missing", lambda c: ckpt(c, _p(c, "gone.pt")), r"checkpoint .*gone\.pt does not exist"),
    Case("checkpoint-is-a-folder", lambda c: ckpt(c, _mkdir(_p(c, "folder.pt"))), r"folder\.pt is not a file"),
    Case("checkpoint-empty", lambda c: ckpt(c, B.empty_file(_p(c, "empty.pt"))), r"empty\.pt is empty"),
    Case("checkpoint-text", lambda c: ckpt(c, B.text_file(_p(c, "notes.pt"))), r"notes\.pt is damaged or not a PyTorch"),
    Case("checkpoint-truncated", lambda c: ckpt(c, B.truncated_copy(saved(_p(c, "w.pt"), B.zoo_state()), _p(c, "cut.pt"))),
         r"cut\.pt is damaged"),
    Case("checkpoint-run-file", lambda c: ckpt(c, _copy(c.finished, _p(c, "run.h5"))),
         r"run\.h5 is an HDF5 file .*not a model checkpoint"),
    Case("checkpoint-npy", lambda c: ckpt(c, _npy(_p(c, "w.npy"))), r"w\.npy is a NumPy array file \(\.npy\), not a model checkpoint"),
    Case("checkpoint-npz", lambda c: ckpt(c, _npz(_p(c, "w.npz"))), r"w\.npz is a NumPy archive"),
    Case("checkpoint-other-architecture", lambda c: ckpt(c, saved(_p(c, "cnn.pt"), B.zoo_state("cnn_tiny"))),
         r"cnn\.pt.*mlp_tiny"),
    Case("checkpoint-no-architecture", lambda c: ckpt(c, saved(_p(c, "odd.pt"), {"w": torch.zeros(3, 7)}), model=None),
         r"odd\.pt"),
    Case("checkpoint-not-a-state-dict", lambda c: ckpt(c, saved(_p(c, "list.pt"), [1, 2, 3])), r"list\.pt holds a list"),
    Case("checkpoint-pickle", lambda c: ckpt(c, B.pickle_with_marker(_p(c, "evil.pt"), _p(c, "ran"))),
         r"evil\.pt contains Python objects that would run code when loaded \((io|builtins)\.open\); opt in with --trust-code"),
    Case("checkpoint-nan", lambda c: ckpt(c, saved(_p(c, "nan.pt"), B.poisoned(B.zoo_state()))),
         r"nan\.pt holds NaN/inf weights: fc1\.weight holds 12 NaN values$"),
    Case("checkpoint-nan-without-model", lambda c: ckpt(c, saved(_p(c, "nan.pt"), B.poisoned(B.zoo_state())), model=None),
         r"nan\.pt holds NaN/inf weights: fc1\.weight holds 12 NaN values$"),
    Case("checkpoint-inf", lambda c: ckpt(c, saved(_p(c, "inf.pt"), B.poisoned(B.zoo_state(), "fc2.bias", float("inf"), 1))),
         r"inf\.pt holds NaN/inf weights: fc2\.bias holds 1 infinite value$"),
    Case("checkpoint-safetensors-damaged", lambda c: ckpt(c, _bad_safetensors(_p(c, "w.safetensors"))),
         r"w\.safetensors is damaged or not a safetensors file"),
    Case("checkpoint-torchscript", lambda c: ckpt(c, _torchscript(_p(c, "ts.pt"))), r"ts\.pt is a TorchScript archive.*--trust-code"),
    Case("user-model-nan-weights", lambda c: ckpt(c, c.graphs["nan.pt2"], model=str(c.graphs["net.pt2"])),
         r"nan\.pt2 holds NaN/inf weights: .*12 NaN values"),
    Case("user-model-nan-state-dict", lambda c: ckpt(c, saved(_p(c, "nan.pt"), B.poisoned(B.SmallNet().state_dict())),
                                                     model=str(c.graphs["net.pt2"])),
         r"nan\.pt holds NaN/inf weights: fc1\.weight holds 12 NaN values$"),
    Case("user-model-weights-of-another-net", lambda c: ckpt(c, saved(_p(c, "cnn.pt"), B.zoo_state("cnn_tiny")),
                                                             model=str(c.graphs["net.pt2"])),
         r"cnn\.pt \(weights for net\.pt2\) do not fit the model"),
    # --- exports ----------------------------------------------------------------------------------
    Case("export-run-missing", lambda c: export(c, _p(c, "gone.h5")), r"gone\.h5"),
    Case("export-run-empty", lambda c: export(c, B.empty_file(_p(c, "empty.h5"))), r"empty\.h5"),
    Case("export-text-named-h5", lambda c: export(c, B.text_file(_p(c, "notes.h5"))), r"notes\.h5"),
    Case("export-hdf5-not-a-run", lambda c: export(c, B.hdf5_not_a_run(_p(c, "other.h5"))), r"other\.h5"),
    Case("export-run-is-a-folder", lambda c: export(c, _mkdir(_p(c, "folder.h5"))),
         r"folder\.h5 is a folder, not a run file"),
    Case("export-run-truncated", lambda c: export(c, B.truncated_copy(c.finished, _p(c, "cut.h5"), 0.6)), r"cut\.h5"),
    Case("export-config-not-json", lambda c: export(c, B.run_copy(c.finished, _p(c, "r.h5"), config="{not json")),
         r"r\.h5 is damaged: its stored run config is not valid JSON"),
    Case("export-config-null", lambda c: export(c, B.run_copy(c.finished, _p(c, "r.h5"), config="null")),
         r"r\.h5 is damaged: its stored run config is not a run's config"),
    Case("export-config-no-stages", lambda c: export(c, B.run_copy(c.finished, _p(c, "r.h5"), config='{"stages": []}'),
                                                     "compact"),
         r"r\.h5 is damaged: its stored run config is not a run's config"),
    Case("export-mean-not-numbers", lambda c: export(c, B.run_copy(c.finished, _p(c, "r.h5"), mean="abc")),
         r"r\.h5 is damaged: its model attributes cannot be read"),
    Case("export-tensor-filter-fails", lambda c: export(c, B.run_with_flipped_tensor(c.finished, _p(c, "r.h5"))),
         r"r\.h5.*/model/fc1\.weight fails its checksum"),
    Case("export-failed-run", lambda c: export(c, B.failed_run(_p(c, "failed.h5"))),
         r"failed\.h5 holds no final model \(status failed\)"),
    *[Case(f"export-nan-{fmt}", lambda c, fmt=fmt: export(c, B.run_with_nan(c.finished, _p(c, "nan.h5")), fmt),
           r"^error: fc1\.weight holds 12 NaN values; nothing written$") for fmt in ("dense", "onnx", "pt2", "compact")],
    *[Case(f"export-{fmt}-to-a-folder", lambda c, fmt=fmt: export(c, c.finished, fmt, _mkdir(c.exports / "model")),
           r"cannot write .*model: it is a folder") for fmt in ("dense", "onnx", "pt2", "compact")],
    Case("export-dense-sidecar-is-a-folder",
         lambda c: export(c, c.finished, "dense", _mkdir(c.exports / "model.json").with_suffix(".safetensors")),
         r"cannot write .*model\.json: it is a folder"),
    Case("export-over-an-older-file-to-a-folder",
         lambda c: export(c, c.finished, "dense", _mkdir(c.exports / "sub").parent / B.text_file(c.exports / "sub.json").stem),
         r"cannot write .*sub: it is a folder"),
    Case("export-read-only-folder", lambda c: export(c, c.finished, "dense", read_only(c) / "m.safetensors"),
         r"cannot write .*readonly/m\.safetensors: Permission denied"),
    Case("export-read-only-subfolder", lambda c: export(c, c.finished, "compact", read_only(c) / "sub" / "m.cwbc"),
         r"cannot write .*m\.cwbc: Permission denied"),
    Case("export-parent-is-a-file", lambda c: export(c, c.finished, "compact", B.text_file(_p(c, "blocker")) / "m.cwbc"),
         r"cannot write .*blocker is a file, not a folder"),
    Case("export-onnx-not-installed", lambda c: (no_onnx(c), export(c, c.finished, "onnx"))[1],
         r"^error: ONNX export needs the onnx package: pip install onnx$"),
    # --- compare and train ------------------------------------------------------------------------
    Case("compare-missing", lambda c: ["compare", _p(c, "gone.h5")], r"gone\.h5"),
    Case("compare-text-named-h5", lambda c: ["compare", B.text_file(_p(c, "notes.h5"))], r"notes\.h5"),
    Case("compare-hdf5-not-a-run", lambda c: ["compare", B.hdf5_not_a_run(_p(c, "other.h5"))], r"other\.h5"),
    Case("compare-run-is-a-folder", lambda c: ["compare", _mkdir(_p(c, "folder.h5"))], r"folder\.h5 is a folder"),
    Case("compare-truncated", lambda c: ["compare", c.finished, B.truncated_copy(c.finished, _p(c, "cut.h5"), 0.3)],
         r"cut\.h5"),
    Case("epochs-not-a-number", lambda c: run(c, "--epochs", "abc"), r"--epochs.*'abc'"),
    Case("export-unknown-format", lambda c: export(c, c.finished, "zzz"), r"--format.*'zzz'"),
    Case("train-out-is-a-folder", lambda c: ["train", "--model", "mlp_tiny", "--dataset", "tiny", "--out",
                                             _mkdir(_p(c, "refs"))], r"--out .*refs is a folder"),
    Case("train-unknown-dataset", lambda c: ["train", "--model", "mlp_tiny", "--dataset", "zzz", "--out",
                                             _p(c, "ref.pt")], r"zzz"),
    Case("train-negative-epochs", lambda c: ["train", "--model", "mlp_tiny", "--dataset", "tiny", "--epochs", "-2",
                                             "--out", _p(c, "ref.pt")], r"epochs.*-2"),
    Case("train-unknown-model", lambda c: ["train", "--model", "zzz", "--dataset", "tiny", "--out", _p(c, "ref.pt")],
         r"zzz"),
]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(Path(src).read_bytes())
    return dst


def _npy(path: Path) -> Path:
    np.save(path, np.zeros((3, 3), np.float32))
    return path


def _npz(path: Path) -> Path:
    np.savez(path, w=np.zeros((3, 3), np.float32))
    return path


def _nan_images() -> np.ndarray:
    x = np.random.default_rng(0).random((10, 6, 5)).astype(np.float32)
    x.flat[[3, 7, 11]] = np.nan
    return x


def _bad_safetensors(path: Path) -> Path:
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(10))      # 54 data bytes short
    return path


def _torchscript(path: Path) -> Path:
    with warnings.catch_warnings():          # torch.jit's deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(B.SmallNet()), str(path))
    return path


def _snapshot(folder: Path) -> dict:
    """Every path under `folder` with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None for p in folder.rglob("*")}


@pytest.mark.parametrize("case", [c.param for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(case, tmp_path, finished_run, graphs, monkeypatch, capsys):
    ctx = Ctx(tmp_path, finished_run, graphs, monkeypatch)
    ctx.runs.mkdir()
    ctx.exports.mkdir()
    argv = [str(a) for a in case.argv(ctx)]
    before = _snapshot(tmp_path)
    capsys.readouterr()
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == case.code, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert re.search(case.message, err.rstrip("\n")), err
    assert _snapshot(tmp_path) == before                   # no run file, export, temporary or marker


def test_the_corpus_is_large_and_its_names_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and len(names) >= 60
