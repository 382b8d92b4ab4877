"""Headless demo: pretrain LeNet-300-100, compress it with magnitude pruning and DNS, compare."""

from __future__ import annotations

import sys

from workbench.core.config import RunConfig
from workbench.core.errors import DataError, WorkbenchError
from workbench.core.presets import preset_stages
from workbench.data import find_dataset, load_dataset
from workbench.engine.compare import compare_rows, format_table
from workbench.engine.console import Printer, run_with_events

DEMO_PRESETS = ("magnitude-lenet300", "dns-lenet300")   # Han 2015 and Guo 2016 on LeNet-300-100


def pick_dataset(data_dir: str | None) -> str:
    """MNIST where it can be found or downloaded, else Debian's Fashion-MNIST."""
    if find_dataset("mnist", data_dir) is not None:
        return "mnist"      # found: no need to read 60k images just to choose
    try:
        load_dataset("mnist", data_dir)
        return "mnist"
    except DataError as mnist_error:
        try:
            load_dataset("fashion-mnist", data_dir, download=False)
        except DataError:
            raise WorkbenchError(f"{mnist_error}; or install Fashion-MNIST: apt-get install "
                                 "dataset-fashion-mnist") from None
        print("MNIST is not available here; using Fashion-MNIST from /usr/share/datasets instead "
              "(the papers' targets are for MNIST)", file=sys.stderr)
        return "fashion-mnist"


def run_demo(out: str, *, quick: bool = False, data_dir: str | None = None) -> int:
    dataset = pick_dataset(data_dir)
    data = load_dataset(dataset, data_dir, download=False)
    print(f"demo data: {dataset} from {data.source}", file=sys.stderr)
    paths = []
    for preset in DEMO_PRESETS:
        stages = preset_stages(preset)
        if quick:
            for s in stages:
                s.train["epochs"] = min(int(s.train.get("epochs", 10)), 4)
        config = RunConfig(dataset=dataset, stages=stages, model="lenet300", data_dir=data_dir,
                           out_dir=out, preset=preset, pretrain_epochs=5 if quick else 0)
        print(f"\n== {preset}", file=sys.stderr)
        finished = run_with_events(config, Printer(False))
        paths.append(finished.run_path)
        if finished.status != "completed":
            print(f"{preset}: {finished.status} {finished.error}", file=sys.stderr)
            break
    print()
    print(format_table(compare_rows(paths)))
    return 0
