"""Out of room while writing a run file: the run ends `failed` with one line, the points written so far
stay readable, nothing crashes, and a run that cannot even start leaves no file.

Real write failures without root: the CLI runs in a child process under RLIMIT_FSIZE with SIGXFSZ
ignored, so a write past the limit fails with EFBIG exactly where a full disk fails with ENOSPC. The
store's free-space check is exercised in-process (a disk that reports little room); the child with the
check switched off meets the kernel's refusal itself.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys

import core_helpers as H
import numpy as np
import pytest

from workbench import cli
from workbench.core import file_image
from workbench.core.store import read_run
from workbench.engine.compare import compare_rows

pytestmark = pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE needs POSIX")

KIB = 1024
# mlp_tiny, magnitude, 3 epochs: the images put on disk are ~7 KiB (start), ~184-191 KiB (the five
# points: reference, three epochs, finalized), ~207 KiB (with the final model).
RUN = ["run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "magnitude", "--set", "q_fc=1.5",
       "--epochs", "3", "--pretrain-epochs", "3", "--device", "cpu", "--json"]
# The CLI's entry point with the store's free-space check switched off: only the kernel stops a write.
UNCHECKED = ("import sys; from workbench.core import file_image; file_image.check_room = lambda *a: None; "
             "from workbench import cli; sys.exit(cli.main(sys.argv[1:]))")


@pytest.fixture(scope="module")
def warm_cache(cache_root, tmp_path_factory):
    """The reference is pretrained and cached before any child runs under a file size limit."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(cache_root))
        config = H.make_config("magnitude", tmp_path_factory.mktemp("warm"), epochs=1, pretrain_epochs=3)
        assert H.finished(H.run_events(config)).status == "completed"
    return cache_root


def _limited(limit: int):
    def setup():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # EFBIG instead of death, as on a full disk
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return setup


def _run_limited(out, cache, limit: int, checked: bool = True) -> subprocess.CompletedProcess:
    argv = [*RUN, "--out", str(out)]
    cmd = H.cli_cmd(*argv) if checked else [sys.executable, "-c", UNCHECKED, *argv]
    return subprocess.run(cmd, env=H.cli_env(cache), capture_output=True, text=True, timeout=120,
                          preexec_fn=_limited(limit))


def _one_line_error(proc) -> str:
    """The CLI's stderr for a failed run: the progress lines, then exactly one error line."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "HDF5-DIAG" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and proc.stderr.splitlines()[-1] == errors[0], proc.stderr
    return errors[0]


@pytest.mark.parametrize("checked", [True, False], ids=["free-space-check", "kernel-refuses"])
def test_out_of_room_mid_run_fails_in_one_line_and_keeps_the_points(tmp_path, warm_cache, checked, capsys):
    # 260 KiB: every point fits (with the check's margin), the final model does not. Unchecked, 200 KiB:
    # the write of the image with the model really fails (EFBIG), the previous image stays in place.
    out = tmp_path / "runs"
    proc = _run_limited(out, warm_cache, 260 * KIB if checked else 200 * KIB, checked)
    line = _one_line_error(proc)
    (path,) = out.glob("*.h5")
    assert line.startswith(f"error: file too large: could not write {path} (File too large")
    assert line.endswith("; the 5 points so far are kept")
    assert json.loads(proc.stdout.splitlines()[-1])["status"] == "failed"
    assert not list(out.glob(".*.part"))                      # the partial image was removed
    run = read_run(path)
    assert run.status == "failed" and run.attrs["error"] == line.removeprefix("error: ")
    assert not run.has_model
    assert run.metrics["test_accuracy"].shape == (5,)
    assert np.all(np.isfinite(run.metrics["test_accuracy"]))
    np.testing.assert_array_equal(run.metrics["point_kind"], [0, 1, 1, 1, 2])   # reference .. finalized
    (row,) = compare_rows([str(path)])
    assert row["status"] == "failed"
    assert cli.main(["compare", str(path)]) == 0
    assert f"{path.stem[:33]:<34}magnitude   mlp_tiny  failed" in capsys.readouterr().out


@pytest.mark.parametrize("checked", [True, False], ids=["free-space-check", "kernel-refuses"])
def test_no_room_at_start_leaves_no_file(tmp_path, warm_cache, checked):
    out = tmp_path / "runs"
    proc = _run_limited(out, warm_cache, 4 * KIB, checked)
    line = _one_line_error(proc)
    assert line.startswith(f"error: file too large: could not create {out}")
    assert line.endswith("; no run file was written")
    assert list(out.iterdir()) == []                          # no 0-byte .h5, no partial image


# --- the free-space check and ENOSPC, in-process -------------------------------------------------

def _disk_with_room_for(monkeypatch, images: int, free_after: int = 10 * KIB):
    """A file system with plenty of room for `images` run-file images, then `free_after` bytes."""
    seen = []
    real_usage = file_image.shutil.disk_usage

    def usage(path):
        seen.append(path)
        total, used, _ = real_usage(path)
        return type(real_usage(path))(total, used, 1 << 40 if len(seen) <= images else free_after)

    monkeypatch.setattr(file_image.shutil, "disk_usage", usage)


def test_disk_full_found_before_writing_ends_the_run_failed(tmp_path, monkeypatch):
    _disk_with_room_for(monkeypatch, images=3, free_after=300 * KIB)    # start, reference, epoch 1
    fin = H.finished(H.run_events(H.make_config("magnitude", tmp_path, epochs=3)))
    assert fin.status == "failed"
    assert fin.error.startswith(f"disk full: could not write {fin.run_path} (No space left on device: "
                                "300.0 KiB free, ")
    assert fin.error.endswith("needed); the 2 points so far are kept")
    run = read_run(fin.run_path)
    assert run.status == "failed" and run.attrs["error"] == fin.error
    assert run.metrics["step"].tolist() == [0, 4]


def test_a_failed_write_keeps_the_previous_image_and_marks_it_failed(tmp_path, monkeypatch):
    writes = []
    real = file_image._write_all

    def write_all(fd, data):
        writes.append(len(data))
        if len(writes) == 3:                    # the epoch-1 point: another process filled the disk
            real(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(file_image, "_write_all", write_all)
    fin = H.finished(H.run_events(H.make_config("magnitude", tmp_path, epochs=3)))
    assert fin.status == "failed"
    assert fin.error == (f"disk full: could not write {fin.run_path} (No space left on device); "
                         "the 1 point so far is kept")
    assert sorted(p.name for p in tmp_path.iterdir()) == [os.path.basename(fin.run_path)]
    run = read_run(fin.run_path)
    assert (run.status, run.attrs["error"]) == ("failed", fin.error)
    assert run.metrics["step"].tolist() == [0]            # the reference point, from the image before


def test_no_room_even_for_the_end_leaves_the_last_image_read_as_interrupted(tmp_path, monkeypatch):
    _disk_with_room_for(monkeypatch, images=2, free_after=0)            # start and the reference point
    fin = H.finished(H.run_events(H.make_config("magnitude", tmp_path, epochs=3)))
    assert fin.status == "failed"
    assert fin.error.endswith("the 1 point so far is kept (the file could not be marked failed)")
    run = read_run(fin.run_path)
    assert run.attrs["status"] == "running" and run.writer_alive is False
    assert run.status == "interrupted"                    # what compare and the app show
    assert run.metrics["step"].tolist() == [0]
