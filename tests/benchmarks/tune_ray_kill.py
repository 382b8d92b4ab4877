"""A Ray worker killed mid-trial: the study still completes (issue 17's "Show").

    python tests/benchmarks/tune_ray_kill.py [--out DIR] [--trials 4] [--epochs 40] [--retries 1] [--two-nodes]

Starts `tune` with `--ray local` and two workers on mlp_tiny / tiny (trials of a few seconds each), or
with --two-nodes a Ray cluster of two nodes on loopback (`ray start --head`, then a second node joining
it at 127.0.0.1, one CPU each, both writing to DIR as a shared folder) and `--ray 127.0.0.1:PORT`;
watches /proc for the Ray worker processes running a trial (their title is `ray::_trial_task`), kills
one with SIGKILL --kill-after seconds after it started, and lets the study finish. Prints each trial (state, the
worker that ran it, its run file and that file's status), every run file under DIR with its status, and
whether the study reached --trials finished trials. With --retries 1 (the default) Ray runs the killed
trial again on a fresh worker: its first run file stays as the killed process left it (read as
`interrupted`: its writer is gone) and the rerun writes NAME-trial-000N-2.h5; with --retries 0 the
trial is marked failed (WorkerCrashedError; it counts toward --trials) and the study goes on. Linux only (/proc). Slow: about a minute on two shared cores.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def trial_workers() -> list[int]:
    """PIDs of Ray workers now running a trial."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title.startswith("ray::_trial_task"):
                pids.append(int(entry.name))
    return pids


def start_cluster(out: Path) -> str:
    """A head node and a second node joining it over 127.0.0.1, one CPU each; returns the address. The
    nodes' workers get this process's environment (WORKBENCH_CACHE, WORKBENCH_DATA, one thread)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Ray 2.5x+ clusters authenticate with a token: the nodes and this driver share ~/.ray/auth_token
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    subprocess.run(["ray", "get-auth-token", "--generate"], check=True, capture_output=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    subprocess.run(["ray", "start", "--head", "--port", str(port), "--include-dashboard", "false", *common],
                   env=env, check=True, capture_output=True)
    subprocess.run(["ray", "start", "--address", f"127.0.0.1:{port}", *common], env=env, check=True,
                   capture_output=True)
    print(f"two Ray nodes on 127.0.0.1:{port}; run files and the journal in {out}", flush=True)
    return f"127.0.0.1:{port}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--retries", type=int, default=1)
    ap.add_argument("--two-nodes", action="store_true", help="a two-node Ray cluster on loopback, reached by its "
                    "address (the cluster path), instead of a local Ray")
    ap.add_argument("--kill-after", type=float, default=5.0, help="seconds into a trial (its imports and data "
                    "load take a few: sooner, it dies before its run file exists)")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="tune-ray-kill-"))
    os.environ.setdefault("WORKBENCH_CACHE", str(out / "cache"))

    from workbench.core.config import RunConfig, StageConfig
    from workbench.core.store import read_run
    from workbench.engine.tune import RayOptions, format_trial, tune
    from workbench.engine.tune_objective import parse_objective
    from workbench.engine.tune_space import build_space

    config = RunConfig(dataset="tiny", stages=[StageConfig("magnitude", {}, {"epochs": args.epochs})],
                       model="mlp_tiny", device="cpu", pretrain_epochs=2)
    space = build_space(config, ["q_fc=0.5..2"], defaults=False)
    killed: list[int] = []
    done = threading.Event()

    def killer():
        seen: dict[int, float] = {}
        while not done.is_set() and not killed:
            for pid in trial_workers():
                seen.setdefault(pid, time.monotonic())
                if time.monotonic() - seen[pid] > args.kill_after:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    print(f"killed worker {pid} mid-trial", flush=True)
                    break
            time.sleep(0.2)

    address = start_cluster(out) if args.two_nodes else "local"
    threading.Thread(target=killer, daemon=True).start()
    started = time.perf_counter()
    try:
        study = tune(config, space, args.trials, parse_objective("ratio-at-drop=90"), out,
                     ray=RayOptions(address, 2, retries=args.retries),
                     progress=lambda r: print(format_trial(r) + f"  worker {r.worker}", flush=True))
    finally:
        done.set()
        if args.two_nodes:
            subprocess.run(["ray", "stop", "--force"], capture_output=True)
    print(f"study: {len(study.trials)} trials in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{s} {sum(t.state == s for t in study.trials)}" for s in ("complete", "pruned", "failed")))
    for path in sorted(out.glob("*.h5")):
        print(f"  {path.name}: {read_run(path).status}")
    finished = [t for t in study.trials if t.state in ("complete", "pruned")
                or (t.state == "failed" and t.error not in ("cancelled", "interrupted"))]
    workers = sorted({t.worker for t in study.trials if t.worker})
    nodes = sorted({t.worker.split(" node ")[-1] for t in study.trials if " node " in (t.worker or "")})
    print(f"killed: {killed or 'none (no trial ran long enough)'}; workers used: {workers}; nodes: {nodes}")
    print(f"study completed: {len(finished) >= args.trials}")
    return 0 if killed and len(finished) >= args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
