#!/usr/bin/env bash
# Quick start from a fresh clone (Debian 12 or any Linux with Python 3.10+):
#   ./quickstart.sh            install into .venv, then open the app with the demo session
#                              (no display: the same comparison headless, printing the table)
#   ./quickstart.sh test       install into .venv with the test tools, then run the test suite
#   ./quickstart.sh demo ...   the demo with options (e.g. --quick); other words run `workbench ...`
# Debian's system pip refuses to install into the system Python (PEP 668), so everything goes into a
# virtual environment here; nothing needs activating. As root it also installs the few system packages
# Qt needs and Debian's Fashion-MNIST package (the demo's fallback when MNIST cannot be found).
set -euo pipefail
cd "$(dirname "$0")"
venv="${WORKBENCH_VENV:-.venv}"
what="${1:-app}"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=""
  python3 -c "import ensurepip, venv" 2>/dev/null || missing="python3-venv"
  (apt-get update -qq && apt-get install -y -qq $missing libegl1 libgl1 libxkbcommon0 libfontconfig1 \
     libdbus-1-3 dataset-fashion-mnist) >/dev/null 2>&1 || echo "note: apt-get install failed; carrying on"
fi
if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
  echo "error: Python's venv module is missing: install it (sudo apt-get install python3-venv) and run again" >&2
  exit 2
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
# The torch pin first: a range alone would fetch a multi-GB CUDA build where a CPU wheel is at hand.
"$py" -m pip install -q torch==2.13.0
# The `tune` extra: Ray (`workbench tune --ray`) and scipy (`--sampler gp`); its tests run in CI.
if [ "$what" = test ]; then "$py" -m pip install -q -e '.[test,tune]'; else "$py" -m pip install -q -e '.[tune]'; fi
# The data sets of a workbench checkout's shared folder, where there is one (CI and the developers').
if [ -z "${WORKBENCH_DATA:-}" ] && [ -d ../shared/datasets ]; then
  export WORKBENCH_DATA="$(cd ../shared/datasets && pwd)"
fi
case "$what" in
  test) shift || true; QT_QPA_PLATFORM=offscreen exec "$py" -m pytest -q tests "$@" ;;
  app) exec "$venv/bin/workbench" demo ;;
  *) exec "$venv/bin/workbench" "$@" ;;
esac
