"""Run files and exports under failure, counted (issue 15, "Real use"). Not collected by pytest;
tests/core_tests use `kill_loop` for their fast variant.

    python tests/benchmarks/failure_loops.py --kill 20      # SIGKILL 20 CLI runs at random moments
    python tests/benchmarks/failure_loops.py --flips 200    # flip 1-3 payload bytes of a compact export
    python tests/benchmarks/failure_loops.py --full-disk    # a real full disk (a 3 MiB tmpfs; root only)

--kill: each run (mlp_tiny on `tiny`, a point every epoch) is killed at a random moment after it printed
its first epoch's point; counts how many files open, how many hold every point the run printed (same values, in
order), the status the reader reports, and temporary files left beside them.
--flips: each damaged copy is loaded with engine.export.load_compact and counted as refused (one-line
error), loaded equal, loaded different (must be 0) or crashed (must be 0).
--full-disk: runs `workbench run --model lenet300 --dataset mnist --method magnitude --epochs 3 --out
/tmp/full` on a fresh 3 MiB tmpfs: as it is, with the disk filled up to 600 / 100 KiB before, and with
the disk filled by another process right after the first point; prints each run's output, exit status
and `workbench compare /tmp/full/*.h5`. Needs MNIST (WORKBENCH_DATA) and root (mount).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

POINT = re.compile(r"^(reference|finalized|stage \d+ epoch \d+)\s+test acc\s+([\d.]+)%\s+params\s+([\d.]+)x\s+"
                   r"bits\s+([\d.]+)x")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "workbench", *args]


def _env(cache: Path | None) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if cache is not None:
        env["WORKBENCH_CACHE"] = str(cache)
    return env


class _Lines:
    """A child's stderr, read line by line in a thread (so its pipe never fills)."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(proc.stderr), daemon=True)
        self.thread.start()

    def wait_for(self, proc, predicate, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(predicate(line) for line in list(self.lines)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the run did not get going:\n" + "".join(self.lines))
            time.sleep(0.02)


# --- kill -9 -------------------------------------------------------------------------------------

def _printed_points(lines: list[str]) -> list[tuple[str, str, str]]:
    return [m.groups()[1:] for m in map(POINT.match, lines) if m]


def _file_points(run) -> list[tuple[str, str, str]]:
    m = run.metrics
    return [(f"{100 * a:.2f}", f"{p:.1f}", f"{s:.1f}")
            for a, p, s in zip(m["test_accuracy"], m["param_ratio"], m["storage_ratio"])]


def kill_loop(n: int, work: Path, cache: Path, seed: int = 0, max_delay: float = 3.0, log=print) -> list[dict]:
    """SIGKILL `n` CLI runs, each at a random moment (0..max_delay s) after its first epoch's point (the
    reference point comes before torch's optimizer imports take seconds: kills there would all land in
    them); points then come every epoch, a few per second, so kills land among the writes."""
    from workbench.core.errors import WorkbenchError
    from workbench.core.store import read_run

    rng = random.Random(seed)
    results = []
    for i in range(n):
        out = work / f"kill-{i}"
        proc = subprocess.Popen(_cli("run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "magnitude",
                                     "--epochs", "10000", "--pretrain-epochs", "3", "--device", "cpu",
                                     "--out", str(out)),
                                env=_env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines = _Lines(proc)
        try:
            lines.wait_for(proc, lambda line: line.startswith("stage 1 epoch 1 "), timeout=180)
            time.sleep(rng.uniform(0, max_delay))
            proc.kill()
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        lines.thread.join(timeout=10)
        printed = _printed_points(lines.lines)      # all printed before the kill: each must be in the file
        record = {"printed": len(printed), "points": None, "opened": False, "intact": False,
                  "status": None, "leftovers": sorted(p.name for p in out.iterdir() if p.suffix != ".h5")}
        try:
            (path,) = out.glob("*.h5")
            run = read_run(path)
            in_file = _file_points(run)
            record.update(opened=True, status=run.status, points=len(in_file),
                          intact=in_file[:len(printed)] == printed)
        except (ValueError, WorkbenchError) as exc:
            record["error"] = str(exc)
        results.append(record)
        log(f"kill {i + 1}/{n}: {json.dumps(record)}")
    return results


def kill_summary(results: list[dict]) -> dict:
    return {"runs": len(results), "opened": sum(r["opened"] for r in results),
            "every_printed_point_intact": sum(r["intact"] for r in results),
            "statuses": dict(Counter(r["status"] for r in results)),
            "points_printed": [r["printed"] for r in results], "points_in_file": [r["points"] for r in results],
            "files_left_beside": sum(len(r["leftovers"]) for r in results)}


# --- bytes flipped in compact exports ------------------------------------------------------------

def flip_loop(n: int, work: Path, seed: int = 0, log=print) -> dict:
    import torch

    from workbench.core.config import RunConfig, StageConfig
    from workbench.core.errors import WorkbenchError
    from workbench.engine.export import export_run, load_compact
    from workbench.engine.runner import execute

    config = RunConfig(dataset="tiny", model="mlp_tiny", out_dir=str(work), device="cpu", pretrain_epochs=3,
                       stages=[StageConfig("magnitude", {"q_fc": 1.5}, {"epochs": 1}),
                               StageConfig("kmeans", {}, {"epochs": 1})], huffman=True, name="flips")
    finished = list(execute(config))[-1]
    assert finished.status == "completed", finished.error
    original = export_run(finished.run_path, "compact", work / "model.cwbc").path
    blob = original.read_bytes()
    start = 9 + struct.unpack("<I", blob[5:9])[0]       # b"CWBC" | u8 version | u32 header length | header
    reference = load_compact(original).state_dict()
    rng = random.Random(seed)
    counts, crashes = Counter(), []
    for i in range(n):
        damaged = bytearray(blob)
        for pos in rng.sample(range(start, len(blob)), rng.randint(1, 3)):
            damaged[pos] ^= rng.randint(1, 255)
        path = work / f"flip-{i}.cwbc"
        path.write_bytes(bytes(damaged))
        try:
            state = load_compact(path).state_dict()
        except WorkbenchError as exc:
            counts["refused, one line" if "\n" not in str(exc) else "refused, several lines"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - counted: must never happen
            counts["crashed"] += 1
            crashes.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
            continue
        same = state.keys() == reference.keys() and all(torch.equal(state[k], reference[k]) for k in state)
        counts["loaded equal" if same else "loaded different"] += 1
    result = {"copies": n, "payload_bytes": len(blob) - start, **counts, "crashes": crashes}
    log(json.dumps(result))
    return result


# --- a real full disk ----------------------------------------------------------------------------

FULL = Path("/tmp/full")
ISSUE_RUN = ("run", "--model", "lenet300", "--dataset", "mnist", "--method", "magnitude", "--epochs", "3",
             "--out", str(FULL))


def _fill(directory: Path, leave: int | None) -> None:
    """Fill `directory`'s file system up to `leave` bytes free (None: until it refuses)."""
    with open(directory / "filler", "wb", buffering=0) as f:     # unbuffered: nothing left to flush
        block = b"\0" * 4096
        try:
            while leave is None or os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize > leave + 4096:
                f.write(block)
        except OSError:
            pass


def _show(title: str, proc_rc: int, stderr: str, stdout: str) -> None:
    print(f"\n=== {title}\nexit status {proc_rc}\n--- stderr (last 12 lines)")
    print("\n".join(stderr.splitlines()[-12:]))
    if stdout.strip():
        print("--- stdout\n" + stdout.strip())
    compare = subprocess.run(f"{sys.executable} -m workbench compare {FULL}/*.h5", shell=True, capture_output=True,
                             text=True, env=_env(None), cwd=ROOT)
    print(f"--- workbench compare {FULL}/*.h5 (exit status {compare.returncode})")
    print((compare.stdout + compare.stderr).strip())
    print("--- files: " + ", ".join(f"{p.name} ({p.stat().st_size} bytes)" for p in sorted(FULL.iterdir())))


def full_disk() -> None:
    if os.geteuid() != 0:
        print("--full-disk skipped: mounting a tmpfs needs root")
        return
    FULL.mkdir(exist_ok=True)
    scenarios = [("as in the issue: a 3 MiB tmpfs", "before", None, False),
                 ("filled up to 600 KiB free before the run", "before", 600 * 1024, True),
                 ("filled up to 100 KiB free before the run", "before", 100 * 1024, True),
                 ("filled by another process right after the first point", "after", None, True)]
    for title, when, leave, fill in scenarios:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(FULL)], check=True)
        proc = None
        try:
            if fill and when == "before":
                _fill(FULL, leave)
            proc = subprocess.Popen(_cli(*ISSUE_RUN), env=_env(None), cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            lines = _Lines(proc)
            if fill and when == "after":
                lines.wait_for(proc, lambda line: line.startswith("reference "), timeout=600)
                _fill(FULL, None)
            stdout = proc.stdout.read()
            proc.wait()
            lines.thread.join(timeout=10)
            (FULL / "filler").unlink(missing_ok=True)      # so that `compare` sees only run files
            _show(title, proc.returncode, "".join(lines.lines), stdout)
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            subprocess.run(["umount", str(FULL)], check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kill", type=int, metavar="N", help="SIGKILL N runs at random moments")
    ap.add_argument("--flips", type=int, metavar="N", help="N compact copies with 1-3 payload bytes flipped")
    ap.add_argument("--full-disk", action="store_true", help="a real full disk (root: mounts a tmpfs)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (args.kill or args.flips or args.full_disk):
        ap.error("give --kill N, --flips N and/or --full-disk")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    given_cache = os.environ.get("WORKBENCH_CACHE")
    with tempfile.TemporaryDirectory(prefix="failure-loops-") as tmp:
        work = Path(tmp)
        cache = Path(given_cache or work / "cache")         # the tiny reference, pretrained once
        os.environ["WORKBENCH_CACHE"] = str(cache)           # for the flips' run in this process
        try:
            if args.kill:
                print("kill -9:", json.dumps(kill_summary(kill_loop(args.kill, work, cache, args.seed))))
            if args.flips:
                (work / "flips").mkdir()
                print("flips:", json.dumps(flip_loop(args.flips, work / "flips", args.seed, log=lambda s: None)))
        finally:
            if given_cache is None:
                del os.environ["WORKBENCH_CACHE"]
    if args.full_disk:
        full_disk()
    return 0


if __name__ == "__main__":
    sys.exit(main())
