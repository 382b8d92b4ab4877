"""Do the presets hold on a data set they were not tuned on? Runs each named preset on another data set
(Fashion-MNIST by default) from that set's own cached reference, through the same command as a user's
`workbench run --preset P --dataset D`, and prints the reference accuracy, the result, the drop and both
ratios beside what the preset measured on its own data set.

    WORKBENCH_DATA=../shared/datasets python tests/benchmarks/presets_elsewhere.py \\
        [--presets magnitude-lenet300,lowrank-lenet300,dns-lenet300,sws-lenet300] [--dataset fashion-mnist] \\
        [--seed 0] [--out runs/elsewhere] [--epochs N] [--train-subset N]

--epochs / --train-subset shorten every run (a smoke test of the script, not a measurement). One run at a
time, one after another: about 3 min each for LeNet-300-100 on one thread. A drop far beyond the preset's
own says the preset fits one set of weights (the SWS preset without its snap budget: 44 points).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from workbench.core.presets import get_preset

DEFAULT = "magnitude-lenet300,lowrank-lenet300,dns-lenet300,sws-lenet300"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default=DEFAULT)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/elsewhere")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--train-subset", type=int)
    args = ap.parse_args(argv)
    rows = []
    for name in [p.strip() for p in args.presets.split(",") if p.strip()]:
        preset = get_preset(name)
        cmd = [sys.executable, "-m", "workbench", "run", "--preset", name, "--dataset", args.dataset,
               "--seed", str(args.seed), "--out", args.out, "--name", f"{name}-{args.dataset}", "--json", "--quiet"]
        if args.epochs is not None:
            cmd += ["--epochs", str(args.epochs)]
        if args.train_subset is not None:
            cmd += ["--train-subset", str(args.train_subset)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            print(f"{name}: failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}", file=sys.stderr)
            continue
        r = json.loads(lines[-1])
        m = preset.get("measured") or {}
        own = (f"{100 * m['accuracy_mean']:.2f} % @ {m['ratio_mean']:.1f}x {m['ratio_of']}" if m else "-")
        rows.append((name, r["reference_accuracy"], r["test_accuracy"], r["param_ratio"], r["storage_ratio"], own))
        print(f"{name}: {100 * r['test_accuracy']:.2f} % (reference {100 * r['reference_accuracy']:.2f} %), "
              f"{r['param_ratio']:.1f}x parameters, {r['storage_ratio']:.1f}x bits", flush=True)
    print(f"\n| preset | {args.dataset} ref % | result % | drop (points) | params x | bits x | on its own set |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, ref, acc, pr, sr, own in rows:
        print(f"| {name} | {100 * ref:.2f} | {100 * acc:.2f} | {100 * (ref - acc):.2f} | {pr:.1f} | {sr:.1f} | {own} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
