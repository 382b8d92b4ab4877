"""Smoke check of the Linux desktop bundle (minutes; not a unit test): build it, then use it as a user would.

    python3 packaging/smoke_bundle.py [--bundle DIR | --work DIR] [--repeats N] [--compare-python PY]

Without --bundle it runs packaging/build_bundle.sh (build venv and bundle under --work, default
/tmp/workbench-bundle). Then, all in a fresh temporary folder (its own cache, settings and HOME), and
without a network where `unshare -rn` can cut it off (the bundle needs none at run time):
  1. `workbench --version` and `workbench presets` (the presets travel as data);
  2. a tiny compression: `workbench run --model mlp_tiny --dataset tiny --method hashed --epochs 1`
     (the built-in data set; the reference is pretrained in seconds), reporting whether the hashing
     kernel was compiled natively or the PyTorch path ran;
  3. the same with no C compiler on PATH: the PyTorch fallback must run and say why;
  4. the app offscreen with that run file (`workbench gui RUN.h5`, WORKBENCH_EXIT_AFTER_SHOWN=1: the app
     closes itself once its window is up and the run is loaded, and prints the time since its start),
     --repeats times, interleaved with `PY -m workbench gui RUN.h5` when --compare-python PY is given;
  5. install.sh --in-place into the temporary HOME (desktop entry, icon, MIME type and its default; where
     GIO is installed, what a file manager makes of a run file) and uninstall.sh.
It prints the bundle's size and the start-up times, and exits 1 if any step failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHOWN = re.compile(r"window shown, \d+ run file\(s\) loaded: ([\d.]+) s")
KERNEL = re.compile(r"(native CPU kernel \([^)]*\)|PyTorch path \(.*\))")
failures: list[str] = []
OFFLINE: list[str] = []         # the command prefix that runs a program without a network, where available


def step(name: str, ok: bool, detail: str = "") -> bool:
    print(f"[{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)
    return ok


def run(cmd: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([*OFFLINE, *cmd], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(cmd, 124, exc.stdout or "", f"timed out after {timeout:.0f} s")


def last_line(done: subprocess.CompletedProcess) -> str:
    lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def dir_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files), len(files)


def start_app(cmd: list[str], run_file: Path, env: dict) -> tuple[float | None, float, str]:
    """(seconds to a usable window as the app measured it from its process start, wall seconds until the
    process ended, the failure's line or '')."""
    t0 = time.perf_counter()
    done = run([*cmd, "gui", str(run_file)], {**env, "WORKBENCH_EXIT_AFTER_SHOWN": "1"}, timeout=300)
    wall = time.perf_counter() - t0
    found = SHOWN.search(done.stdout)
    if done.returncode != 0 or not found:
        return None, wall, last_line(done)
    return float(found.group(1)), wall, ""


def check_install(bundle: Path, env: dict, home: Path, run_file: Path) -> None:
    env = {**env, "HOME": str(home)}
    for key in ("XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        env.pop(key, None)
    data, config = home / ".local/share", home / ".config"
    done = run([str(bundle / "install.sh"), "--in-place"], env)
    entry = data / "applications/compression-workbench.desktop"
    exec_line = next((line for line in entry.read_text().splitlines() if line.startswith("Exec=")), "") \
        if entry.exists() else ""
    step("install.sh", done.returncode == 0 and exec_line == f'Exec="{bundle}/workbench" gui %F',
         exec_line or last_line(done))
    mimeapps = (config / "mimeapps.list").read_text() if (config / "mimeapps.list").exists() else ""
    step("run files' default app", "application/x-compression-workbench-run=compression-workbench.desktop"
         in mimeapps)
    step("icon installed", (data / "icons/hicolor/256x256/apps/compression-workbench.png").is_file()
         and (data / "icons/hicolor/scalable/apps/compression-workbench.svg").is_file())
    globs = data / "mime/globs2"
    if shutil.which("update-mime-database"):
        step("MIME database: *.h5 is a run file", globs.exists() and
             "60:application/x-compression-workbench-run:*.h5" in globs.read_text())
    if shutil.which("gio"):     # as a file manager sees it: the type, and the app a double click starts
        kind = run(["gio", "info", "-a", "standard::content-type", str(run_file)], env).stdout
        default = (run(["gio", "mime", "application/x-compression-workbench-run"], env).stdout.splitlines()
                   or [""])[0]
        step("a run file as the desktop sees it (gio)", "application/x-compression-workbench-run" in kind
             and default.endswith("compression-workbench.desktop"), f"{(kind.strip().splitlines() or ['?'])[-1].strip()}; {default}")
    done = run([str(bundle / "install.sh"), "--in-place"], env)      # again: nothing doubled
    step("install.sh twice", done.returncode == 0 and (config / "mimeapps.list").read_text().count(
        "application/x-compression-workbench-run=") == 1, last_line(done) if done.returncode else "")
    done = run([str(bundle / "uninstall.sh")], env)
    left = [p for p in (entry, home / ".local/bin/compression-workbench",
                        data / "mime/packages/compression-workbench.xml") if p.exists() or p.is_symlink()]
    step("uninstall.sh", done.returncode == 0 and not left and bundle.is_dir()
         and "compression-workbench" not in (config / "mimeapps.list").read_text(),
         ", ".join(map(str, left)) or (last_line(done) if done.returncode else "bundle left in place"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, help="an existing bundle folder (skips the build)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/workbench-bundle"),
                    help="build folder and dist of the build (default /tmp/workbench-bundle)")
    ap.add_argument("--build-args", default="", help="more options for build_bundle.sh, e.g. --system-site-packages")
    ap.add_argument("--repeats", type=int, default=1, help="app starts to time (interleaved with --compare-python)")
    ap.add_argument("--compare-python", help="also time `PY -m workbench gui` on the same run file")
    args = ap.parse_args()

    bundle = args.bundle
    if bundle is None:
        t0 = time.perf_counter()
        done = subprocess.run([str(HERE / "build_bundle.sh"), "--build-dir", str(args.work / "build"),
                               "--dist", str(args.work / "dist"), *args.build_args.split()])
        if not step("build", done.returncode == 0, f"{time.perf_counter() - t0:.0f} s"):
            return 1
        bundle = args.work / "dist" / "compression-workbench"
    bundle = bundle.resolve()
    exe = bundle / "workbench"
    if not step("bundle", exe.is_file(), str(bundle)):
        return 1
    size, count = dir_size(bundle)
    print(f"bundle size: {size / 2**20:.0f} MiB in {count} files ({bundle})", flush=True)

    unshare = shutil.which("unshare")      # by its path: one step runs with a PATH that has no compiler
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        OFFLINE[:] = [unshare, "-rn"]       # a network namespace of its own: no interface but loopback
    print("network: " + ("cut off (unshare -rn)" if OFFLINE else "not cut off (unshare -rn is not allowed here)"))
    tmp = Path(tempfile.mkdtemp(prefix="workbench-smoke-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "QT_"))}
    env.update(WORKBENCH_CACHE=str(tmp / "cache"), XDG_CONFIG_HOME=str(tmp / "config"),
               QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))

    done = run([str(exe), "--version"], env)
    step("workbench --version", done.returncode == 0, done.stdout.strip() or last_line(done))
    done = run([str(exe), "presets"], env)
    step("workbench presets", done.returncode == 0 and "dns-lenet300" in done.stdout,
         f"{len(done.stdout.splitlines())} lines" if done.returncode == 0 else last_line(done))

    tiny = ["run", "--model", "mlp_tiny", "--dataset", "tiny", "--method", "hashed", "--epochs", "1",
            "--out", str(tmp / "runs")]
    t0 = time.perf_counter()
    done = run([str(exe), *tiny, "--name", "smoke"], env)
    kernel = KERNEL.search(done.stdout + done.stderr)
    run_file = tmp / "runs" / "smoke.h5"
    step("tiny compression (hashed, mlp_tiny, tiny)", done.returncode == 0 and run_file.is_file(),
         f"{time.perf_counter() - t0:.1f} s" if done.returncode == 0 else last_line(done))
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    used = kernel.group(1) if kernel else "no kernel line in the output"
    step("hashing kernel", bool(kernel) and (used.startswith("native") or not compiler),
         f"{used} (C compiler here: {compiler or 'none'})")

    nocc = tmp / "no-compiler-path"
    nocc.mkdir()
    env_nocc = {**{k: v for k, v in env.items() if k != "CC"}, "PATH": str(nocc),
                "WORKBENCH_CACHE": str(tmp / "cache-nocc")}
    done = run([str(exe), *tiny, "--name", "fallback"], env_nocc)
    kernel = KERNEL.search(done.stdout + done.stderr)
    step("without a compiler: PyTorch fallback", done.returncode == 0 and bool(kernel)
         and kernel.group(1).startswith("PyTorch path"), kernel.group(1) if kernel else last_line(done))

    if not run_file.is_file():
        return 1
    apps = {"bundle": [str(exe)]}
    if args.compare_python:
        apps["venv"] = [args.compare_python, "-m", "workbench"]
    times: dict[str, list[float]] = {name: [] for name in apps}
    for i in range(args.repeats):
        for name, cmd in apps.items():          # interleaved: the machine's load falls on both alike
            shown, wall, error = start_app(cmd, run_file, env)
            if step(f"app start {i + 1} ({name})", shown is not None,
                    f"usable window {shown:.2f} s, process ended after {wall:.2f} s" if shown else error):
                times[name].append(shown)
    for name, values in times.items():
        if values:
            print(f"start-up to a usable window, {name}: median {statistics.median(values):.2f} s "
                  f"(min {min(values):.2f}, max {max(values):.2f}, n={len(values)})", flush=True)
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} CPUs", flush=True)

    check_install(bundle, env, tmp / "home", run_file)
    shutil.rmtree(tmp, ignore_errors=True)
    print("smoke check " + (f"FAILED: {', '.join(failures)}" if failures else "passed"), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
