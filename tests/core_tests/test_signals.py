"""SIGTERM and SIGINT end a console command with one line and 128 + the signal, at any moment: during
start-up (no run file), and during a run (its file kept, marked cancelled)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import core_helpers as H
import h5py
import numpy as np
import pytest

from workbench.core.events import CancelToken, Finished
from workbench.engine import console

posix = pytest.mark.skipif(os.name != "posix", reason="signal delivery to a child needs POSIX")
RUN = ("run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "dns", "--epochs", "5000",
       "--pretrain-epochs", "3", "--device", "cpu")
WORD = {"SIGTERM": "terminated", "SIGINT": "interrupted"}
CODE = {"SIGTERM": 143, "SIGINT": 130}


def test_first_signal_cancels_the_run_the_second_aborts(capfd):
    handler = console.Signals()
    assert handler.install()
    try:
        assert signal.getsignal(signal.SIGTERM) == handler._on_signal
        with pytest.raises(console.Interrupted) as before:          # no run yet: end at once
            handler._on_signal(signal.SIGTERM, None)
        assert before.value.signum == signal.SIGTERM and handler.exit_code == 143
        handler.token = CancelToken()
        handler._on_signal(signal.SIGINT, None)                      # a run: cancel after this batch
        assert handler.token.cancelled and handler.exit_code == 130
        assert "Ctrl-C: cancelling after this batch (again to abort)" in capfd.readouterr().err
        with pytest.raises(console.Interrupted):                    # again: abort
            handler._on_signal(signal.SIGINT, None)
    finally:
        handler.restore()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_cancelled_while_loading_ends_before_a_run_file_exists(tmp_path):
    token = CancelToken()
    token.cancel()
    events = H.run_events(H.make_config("magnitude", tmp_path / "runs"), token)
    assert events == [Finished("", "cancelled", {}, "cancelled before the run started")]
    assert not (tmp_path / "runs").exists()


def _handles(pid: int, sig: int) -> bool:
    """Whether process `pid` has installed a handler for `sig` (Linux: SigCgt in /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        mask = next(line for line in f if line.startswith("SigCgt:")).split()[1]
    return bool(int(mask, 16) >> (sig - 1) & 1)


def _start(out, cache):
    proc = subprocess.Popen(H.cli_cmd(*RUN, "--out", str(out)), env=H.cli_env(cache), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    return proc, lines, reader


def _finish(proc, reader, sig) -> None:
    try:
        proc.send_signal(sig)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@posix
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc to see the handler")
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_during_start_up_is_one_line(tmp_path, signame):
    out = tmp_path / "runs"
    proc, lines, reader = _start(out, tmp_path / "cache")
    deadline = time.monotonic() + 60
    # Right after start: as soon as the CLI has its handler (before torch is imported, data loaded)
    while not _handles(proc.pid, signal.SIGTERM):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.001)
    _finish(proc, reader, getattr(signal, signame))
    assert proc.returncode == CODE[signame], "".join(lines)
    assert lines == [f"{WORD[signame]} before the run started\n"]
    assert not out.exists() or not any(out.iterdir())


@posix
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])     # kill, timeout, schedulers; Ctrl-C
def test_a_signal_during_a_run_keeps_its_file_cancelled(tmp_path, signame, cache_root):
    out = tmp_path / "runs"
    proc, lines, reader = _start(out, cache_root)
    deadline = time.monotonic() + 60
    # the CLI has printed the first epoch's point (so there is data to keep)
    while not any(line.startswith("stage 1 epoch 1 ") for line in lines):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.05)
    _finish(proc, reader, getattr(signal, signame))
    stderr = "".join(lines)
    assert proc.returncode == CODE[signame], stderr
    assert "Traceback" not in stderr
    (path,) = out.glob("*.h5")
    assert lines[-1] == f"{WORD[signame]}; run file kept: {path} (cancelled)\n"
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "cancelled"
        assert "model" not in f
        n = f["metrics/test_accuracy"].shape[0]
        assert 2 <= n < 5000
        assert np.all(np.isfinite(f["metrics/test_accuracy"][()]))
