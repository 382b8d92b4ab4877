"""Users' models through every method: each architecture of tests/model_tests/architectures.py and the
zoo's resnet20, each brought in each format (.pt2, ONNX, FILE.py:NAME) x every method, on the built-in `tiny` data
(mechanics, not accuracy: one epoch per stage), printing status, ratios, the compact file against the
accounted bytes, and whether the reloaded compact model gives the stored model's outputs.

    python tests/benchmarks/bench_user_models.py [--archs resnet18,...] [--kinds pt2,onnx,py]
                                                 [--methods dns,...] [--threads 1]
    python tests/benchmarks/bench_user_models.py --real [--train 20000] [--epochs 2]

`--real`: one real case end to end. The ResNet-18-style net is trained on Fashion-MNIST (Debian's
dataset-fashion-mnist), brought as .pt2 and as ONNX, compressed with DNS and with magnitude -> kmeans
with Huffman coding; prints accuracy and ratios, and runs the ONNX export of each compressed model in
onnxruntime on the test set.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "model_tests"))

import architectures as A  # noqa: E402
from user_model_files import KINDS, model_file  # noqa: E402

from workbench.core.config import RunConfig, StageConfig  # noqa: E402
from workbench.core.errors import WorkbenchError  # noqa: E402
from workbench.core.events import Finished  # noqa: E402
from workbench.core.store import read_run  # noqa: E402
from workbench.engine.export import _rebuild, export_run, load_compact  # noqa: E402
from workbench.engine.runner import execute  # noqa: E402
from workbench.methods import method_keys  # noqa: E402

SETTINGS = {"magnitude": {"q_fc": 1.0, "q_conv": 1.0}, "dns": {"c_rate": 0.0, "gamma": 0.0},
            "hashed": {"ratio": 0.25}, "funhash": {"ratio": 0.25, "g_widths": "none"}}


def finished(config: RunConfig) -> Finished:
    return [e for e in execute(config) if isinstance(e, Finished)][-1]


def table(args) -> int:
    folder = Path(tempfile.mkdtemp(prefix="user-models-"))
    print("| model | format | method | status | params x | bits x | compact B | accounted B | reloaded |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    problems = 0
    cases = [(a, k) for a in args.archs.split(",") for k in args.kinds.split(",")]
    for arch, kind in cases:
        spec = model_file(kind, arch, folder)
        for method in args.methods.split(","):
            config = RunConfig(dataset="tiny", model=spec, out_dir=str(folder / "runs"), device="cpu",
                               trust_code=kind == "py", pretrain_epochs=1,
                               stages=[StageConfig(method, dict(SETTINGS.get(method, {})), {"epochs": 1})])
            try:
                fin = finished(config)
            except WorkbenchError as exc:            # refused before a run file (the model, its file)
                fin = Finished("", "refused", {}, str(exc))
            if fin.status != "completed":
                problems += 1
                print(f"| {arch} | {kind} | {method} | {fin.status}: {fin.error} | | | | | |", flush=True)
                continue
            s = read_run(fin.run_path).summary
            compact = export_run(fin.run_path, "compact", folder / "m.cwb", trust_code=kind == "py")
            stored, _, _ = _rebuild(fin.run_path, trust_code=kind == "py")
            x = torch.rand(16, 1, 8, 8)
            with torch.no_grad():
                same = torch.allclose(load_compact(compact.path, trust_code=kind == "py")(x), stored(x), atol=1e-5)
            problems += not same
            print(f"| {arch} | {kind} | {method} | completed | {s['param_ratio']:.2f} | {s['storage_ratio']:.2f} | "
                  f"{compact.size_bytes:,} | {compact.accounted_bytes:,.0f} | {'equal' if same else 'DIFFERENT'} |",
                  flush=True)
    print(f"{problems} problems; files in {folder}")
    return 1 if problems else 0


def real(args) -> int:
    """The ResNet-18-style net on Fashion-MNIST, brought as .pt2 and ONNX, compressed two ways."""
    import onnxruntime as ort

    from workbench.data import load_dataset

    folder = Path(tempfile.mkdtemp(prefix="user-real-"))
    data = load_dataset("fashion-mnist", download=False).subset(args.train, None, seed=0)
    torch.manual_seed(0)
    model = A.ResNet18Style(num_classes=10, in_channels=1, width=args.width)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    steps = args.epochs * (len(data.train_x) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=steps)
    t0, g = time.perf_counter(), torch.Generator().manual_seed(0)
    for _ in range(args.epochs):
        order = torch.randperm(len(data.train_x), generator=g)
        for i in range(0, len(order) - 127, 128):
            idx = order[i:i + 128]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model.train()(data.train_x[idx]), data.train_y[idx]).backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        acc = float((model.eval()(data.test_x).argmax(1) == data.test_y).float().mean())
    print(f"trained ResNet18Style (width {args.width}) on {len(data.train_x)} Fashion-MNIST images, "
          f"{args.epochs} epochs, {time.perf_counter() - t0:.0f} s: test accuracy {acc:.4f}", flush=True)
    print("| format | pipeline | ref acc | acc | params x | bits x | compact B | ONNX export acc (onnxruntime) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    pipelines = {"dns": [StageConfig("dns", {"c_rate": 1.0}, {"epochs": args.epochs, "lr": 0.01})],
                 "magnitude -> kmeans (Huffman)": [
                     StageConfig("magnitude", {"q_fc": 1.0, "q_conv": 0.8}, {"epochs": args.epochs, "lr": 0.01}),
                     StageConfig("kmeans", {"bits_fc": 4, "bits_conv": 5}, {"epochs": 1, "lr": 0.001})]}
    for kind in ("pt2", "onnx"):
        spec = model_file(kind, "resnet18", folder, num_classes=10, shape=(1, 28, 28), model=model)
        for label, stages in pipelines.items():
            config = RunConfig(dataset="fashion-mnist", model=spec, out_dir=str(folder / "runs"), device="cpu",
                               train_subset=args.train, huffman="Huffman" in label, stages=stages)
            fin = finished(config)
            if fin.status != "completed":
                print(f"| {kind} | {label} | {fin.status}: {fin.error} |", flush=True)
                continue
            s = fin.summary
            compact = export_run(fin.run_path, "compact", folder / f"{kind}-{len(stages)}.cwb")
            onnx_path = export_run(fin.run_path, "onnx", folder / f"{kind}-{len(stages)}.onnx").path
            session = ort.InferenceSession(str(onnx_path))
            logits = np.concatenate([session.run(None, {session.get_inputs()[0].name: data.test_x[i:i + 1000].numpy()})[0]
                                     for i in range(0, len(data.test_x), 1000)])
            onnx_acc = float((logits.argmax(1) == data.test_y.numpy()).mean())
            print(f"| {kind} | {label} | {s['reference_accuracy']:.4f} | {s['test_accuracy']:.4f} | "
                  f"{s['param_ratio']:.1f} | {s['storage_ratio']:.1f} | {compact.size_bytes:,} | {onnx_acc:.4f} |",
                  flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default=",".join([*A.ARCHITECTURES, "resnet20"]))
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--methods", default=",".join(method_keys()))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--real", action="store_true")
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--width", type=int, default=16)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    return real(args) if args.real else table(args)


if __name__ == "__main__":
    sys.exit(main())
