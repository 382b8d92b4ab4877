"""Run files are readable while they are written, by any HDF5 reader with its default file locking, and
always whole: every read sees the complete file as of some point, a prefix of the finished run."""

from __future__ import annotations

import os
import subprocess
import time

import core_helpers as H
import h5py
import numpy as np
import pytest

from workbench.core import file_image
from workbench.core.store import RunWriter, read_run


def test_another_process_reads_a_run_while_it_is_written(tmp_path, cache_root):
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        H.cli_cmd("run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "magnitude", "--epochs", "12",
                  "--pretrain-epochs", "3", "--device", "cpu", "--out", str(out), "--quiet"),
        env=H.cli_env(cache_root), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []              # (status, test_accuracy so far) per read made while the writer ran
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None:
            assert time.monotonic() < deadline
            paths = list(out.glob("*.h5")) if out.exists() else []
            if not paths:
                time.sleep(0.01)
                continue
            with h5py.File(paths[0], "r") as f:             # plain h5py: default locking, no swmr
                status = f.attrs["status"]
                series = {k: ds[()] for k, ds in f["metrics"].items()}
                for layer in f["layers"].values():
                    for ds in layer.values():
                        ds[()]                                  # every dataset reads (checksums pass)
            assert len({len(v) for v in series.values()}) <= 1    # one entry per point in every series
            seen.append((status, series.get("test_accuracy", np.empty(0))))
            run = read_run(paths[0])                            # the package's reader, alongside
            if run.attrs["status"] == "running":
                assert run.writer_alive is not False and run.status == "running"
            time.sleep(0.03)                                    # two cores: leave the writer some
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 0, proc.stderr.read()
    final = read_run(paths[0]).metrics["test_accuracy"]
    assert final.shape == (14,)                                 # reference, 12 epochs, finalized
    mid_run = [acc for status, acc in seen if status == "running" and len(acc)]
    assert len(mid_run) >= 3, f"only {len(mid_run)} reads during the run"
    lengths = [len(acc) for acc in mid_run]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]     # the reader watched it grow
    for acc in mid_run:
        np.testing.assert_array_equal(acc, final[:len(acc)])    # each read: whole points, as finally kept


def test_a_reader_keeps_its_snapshot_and_sees_a_live_writer(tmp_path):
    path = tmp_path / "r.h5"
    writer = RunWriter(path, {"method": "m"})
    writer.append_point({"step": 0}, {})
    held = h5py.File(path, "r")                         # open across the next point
    try:
        writer.append_point({"step": 4}, {})
        assert held["metrics/step"][()].tolist() == [0]          # the image it opened, unchanged
        with h5py.File(path, "r") as now:
            assert now["metrics/step"][()].tolist() == [0, 4]
        run = read_run(path)
        alive = file_image.writer_alive(path)
        assert alive in (True, None)                    # None only where OFD locks do not exist
        assert run.status == "running"
    finally:
        held.close()
    writer.close()                                      # gone without recording an end (as if killed)
    if alive:
        assert read_run(path).status == "interrupted"
    assert sorted(os.listdir(tmp_path)) == ["r.h5"]     # no temporary images left beside it


@pytest.mark.skipif(not file_image._OFD, reason="open-file-description locks are Linux-only")
def test_an_ended_run_is_not_reported_as_live(tmp_path):
    writer = RunWriter(tmp_path / "r.h5", {})
    assert file_image.writer_alive(tmp_path / "r.h5") is True
    writer.finish("completed")
    assert file_image.writer_alive(tmp_path / "r.h5") is False
    assert read_run(tmp_path / "r.h5").status == "completed"
