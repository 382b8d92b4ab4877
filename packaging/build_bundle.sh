#!/usr/bin/env bash
# The Linux desktop bundle in one command: a PyInstaller one-folder build of the workbench with the CPU
# build of torch, in DIST/compression-workbench (the executable `workbench`, the same command line as the
# pip-installed one), with its icon, desktop entry, MIME type and install.sh / uninstall.sh beside it.
#
#   packaging/build_bundle.sh [--build-dir DIR] [--dist DIR] [--extras onnx] [--system-site-packages]
#
# It makes (or reuses) a build venv in BUILD/venv from $PYTHON (default python3), installs torch there from
# the PyTorch CPU index ($TORCH_INDEX; the Linux wheel on PyPI is the CUDA build, gigabytes of CUDA
# libraries the bundle would carry), then PyInstaller and this package (as its wheel would install it), and
# runs packaging/workbench.spec. --system-site-packages lets the venv see the packages of $PYTHON (an
# installed CPU torch is then not downloaded again). Needs the network for the packages, not at run time.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BUILD=$HERE/build
DIST=$HERE/dist
EXTRAS=""
SITE=()
PYTHON=${PYTHON:-python3}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}

while [ $# -gt 0 ]; do
    case $1 in
        --build-dir) BUILD=$2; shift 2 ;;
        --dist) DIST=$2; shift 2 ;;
        --extras) EXTRAS=$2; shift 2 ;;
        --system-site-packages) SITE=(--system-site-packages); shift ;;
        -h|--help) sed -n '2,13p' "$0" | cut -c3-; exit 0 ;;
        *) echo "build_bundle.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$BUILD" "$DIST"
BUILD=$(cd "$BUILD" && pwd)
DIST=$(cd "$DIST" && pwd)
VENV=$BUILD/venv
PY=$VENV/bin/python
started=$(date +%s)

if [ ! -x "$PY" ]; then
    echo "== build venv $VENV (${SITE[*]:-isolated})"
    "$PYTHON" -m venv "${SITE[@]}" "$VENV"
fi

# torch first, and only a CPU build: the bundle must not carry CUDA (torch.version.cuda is None on a CPU build)
if ! "$PY" -W ignore -c "import sys, torch; sys.exit(torch.version.cuda is not None)" 2>/dev/null; then
    echo "== torch (CPU build) from $TORCH_INDEX"
    "$PY" -m pip install "torch>=2.2,<2.14" --index-url "$TORCH_INDEX"
fi
"$PY" -W ignore -c "import sys, torch; sys.exit(torch.version.cuda is not None)" || {
    echo "build_bundle.sh: the build venv's torch is a CUDA build ($("$PY" -W ignore -c 'import torch; print(torch.__version__)')); the bundle takes the CPU build: remove $VENV or set TORCH_INDEX" >&2
    exit 1
}

echo "== PyInstaller and the workbench package${EXTRAS:+ [$EXTRAS]}"
# Pillow is no dependency of the package (a pip user installs it when needed, as the message says) but
# the app reads image-folder data sets with it, and the bundle has no pip
"$PY" -m pip install "pyinstaller>=6.10,<7" "pillow>=9"
# a wheel built from the source tree and installed (not editable): the spec collects the package data the
# wheel ships, so a file missing from package-data is missing from the bundle too
rm -rf "$BUILD/wheel"
"$PY" -m pip wheel --no-deps --wheel-dir "$BUILD/wheel" "$REPO"
"$PY" -m pip install --force-reinstall --no-deps "$BUILD"/wheel/compression_workbench-*.whl
"$PY" -m pip install "$(ls "$BUILD"/wheel/compression_workbench-*.whl)${EXTRAS:+[$EXTRAS]}"

echo "== PyInstaller"
(cd "$BUILD" && "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath "$BUILD/work" "$HERE/workbench.spec")

BUNDLE=$DIST/compression-workbench
# what installs the bundle into a desktop (install.sh), beside the executable
mkdir -p "$BUNDLE/share"
cp "$REPO/resources/icons/workbench.svg" "$REPO/resources/icons/workbench.png" "$BUNDLE/share/"
cp "$HERE/compression-workbench.desktop" "$HERE/compression-workbench-mime.xml" "$BUNDLE/share/"
cp "$HERE/install.sh" "$HERE/uninstall.sh" "$BUNDLE/"
chmod +x "$BUNDLE/install.sh" "$BUNDLE/uninstall.sh"

echo "== built $BUNDLE in $(( $(date +%s) - started )) s: $(du -sh "$BUNDLE" | cut -f1)" \
     "(torch $("$PY" -W ignore -c 'import torch; print(torch.__version__)'))"
echo "   run it: $BUNDLE/workbench gui; install it for this user: $BUNDLE/install.sh"
