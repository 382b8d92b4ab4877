#!/usr/bin/env bash
# The Python package stays installable with pip: build the sdist and, from it, the wheel; check that both
# carry the package data (presets, icon, the hashing kernel's C source); install the wheel into a fresh
# venv (CPU torch first) and use it from outside the source tree: presets, a tiny compression, the app
# offscreen on the run file it wrote.
#
#   packaging/check_wheel.sh [--work DIR]      (default /tmp/workbench-wheel; minutes, not a unit test)
#
# $PYTHON builds (default python3, with setuptools; no build isolation, so no network for the build
# itself). The venv's packages come from the registries: $TORCH_INDEX as in build_bundle.sh (the CPU
# build of torch), $TORCH_SPEC (default "torch>=2.2,<2.14") to pin torch.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
WORK=/tmp/workbench-wheel
PYTHON=${PYTHON:-python3}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
TORCH_SPEC=${TORCH_SPEC:-torch>=2.2,<2.14}
case ${1:-} in
    --work) WORK=$2 ;;
    "") ;;
    *) echo "check_wheel.sh: unknown option $1 (--work DIR)" >&2; exit 2 ;;
esac
fail() { echo "[FAIL] $*" >&2; exit 1; }
ok() { echo "[ok] $*"; }

rm -rf "$WORK/dist" "$WORK/run"
mkdir -p "$WORK/dist" "$WORK/run"
# sdist first, then the wheel built from the unpacked sdist (what `python -m build --no-isolation` does, with
# setuptools' backend called directly): a file the sdist lacks is missing from the wheel too
"$PYTHON" - "$REPO" "$WORK/dist" > "$WORK/build.log" 2>&1 <<'PY' || { tail -20 "$WORK/build.log"; fail "build (log: $WORK/build.log)"; }
import os, sys, tarfile, tempfile
from pathlib import Path
from setuptools import build_meta as backend
repo, out = Path(sys.argv[1]), Path(sys.argv[2]).resolve()
os.chdir(repo)
sdist = backend.build_sdist(str(out))
with tempfile.TemporaryDirectory() as tmp:
    with tarfile.open(out / sdist) as tar:
        tar.extractall(tmp, filter="data")
    os.chdir(Path(tmp) / sdist[:-len(".tar.gz")])
    backend.build_wheel(str(out))
PY
WHEEL=$(ls "$WORK"/dist/*.whl)
SDIST=$(ls "$WORK"/dist/*.tar.gz)
ok "built $(basename "$SDIST") and $(basename "$WHEEL")"

"$PYTHON" - "$WHEEL" "$SDIST" "$REPO" <<'PY' || fail "package data"
import sys, tarfile, zipfile
from pathlib import Path
wheel, sdist, repo = sys.argv[1], sys.argv[2], Path(sys.argv[3])
in_wheel = set(zipfile.ZipFile(wheel).namelist())
in_sdist = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
need = {f"workbench/resources/presets/{p.name}" for p in (repo / "resources/presets").glob("*.json")}
need |= {"workbench/resources/icons/workbench.png", "workbench/resources/icons/workbench.svg",
         "workbench/models/hashed/kernel.c"}
missing = sorted(need - in_wheel)
if missing:
    sys.exit("missing from the wheel: " + ", ".join(missing))
sources = {n.replace("workbench/resources/", "resources/", 1) for n in need}
if missing := sorted(sources - in_sdist):
    sys.exit("missing from the sdist: " + ", ".join(missing))
entry_points = zipfile.ZipFile(wheel).read(next(n for n in in_wheel if n.endswith("entry_points.txt"))).decode()
if "workbench = workbench.cli:entry" not in entry_points:
    sys.exit("the wheel has no `workbench` command")
print(f"[ok] package data: {len(need)} files in the wheel and the sdist; the `workbench` command")
PY

VENV=$WORK/venv
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q "$TORCH_SPEC" --index-url "$TORCH_INDEX" > "$WORK/pip.log" 2>&1 \
    || { tail -5 "$WORK/pip.log"; fail "torch into the fresh venv"; }
"$VENV/bin/pip" install -q "$WHEEL" >> "$WORK/pip.log" 2>&1 || { tail -5 "$WORK/pip.log"; fail "pip install the wheel"; }
ok "fresh venv $VENV: $("$VENV/bin/python" -W ignore -c 'import torch; print("torch", torch.__version__)'), the wheel installed"

# from outside the source tree, with a cache and settings of its own
cd "$WORK/run"
export WORKBENCH_CACHE=$WORK/run/cache XDG_CONFIG_HOME=$WORK/run/config QT_QPA_PLATFORM=offscreen
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
unset WORKBENCH_DATA
"$VENV/bin/workbench" presets > presets.txt || fail "workbench presets"
grep -q dns-lenet300 presets.txt || fail "workbench presets lists no dns-lenet300"
ok "workbench presets: $(wc -l < presets.txt) lines"
"$VENV/bin/workbench" run --model mlp_tiny --dataset tiny --method hashed --epochs 1 --out runs --name wheel \
    > run.txt 2>&1 || { tail -3 run.txt; fail "workbench run"; }
ok "workbench run (hashed, mlp_tiny, tiny): $(tail -1 run.txt)"
ok "hashing kernel: $(grep -o 'native CPU kernel ([^)]*)\|PyTorch path (.*)' run.txt || echo 'no kernel line')"
WORKBENCH_EXIT_AFTER_SHOWN=1 "$VENV/bin/workbench" gui runs/wheel.h5 > gui.txt 2>&1 || { cat gui.txt; fail "workbench gui"; }
ok "workbench gui runs/wheel.h5: $(grep 'window shown' gui.txt)"
echo "wheel check passed"
