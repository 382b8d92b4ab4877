"""Where unstructured sparsity starts to pay on this CPU: a Linear layer as the deployment measurement's
`csr` form runs it (engine/deploy_csr.CsrLinear: torch.sparse CSR, int32 indices) against the same
layer dense (nn.Linear), at densities from 1% to 50%, batch 1 and 256, in one process, interleaved.

    python tests/benchmarks/bench_deploy.py [--shapes 1024x1024,300x784] [--densities 1,2,5,10,20,30,40,50]
        [--batches 1,256] [--threads 1] [--repeats 15] [--quick] [--plan]

--plan also runs the deployment's own per-layer choice (engine/deploy_csr.plan: a short interleaved
measurement at the given batches, the geometric mean of dense / CSR over them deciding) on each layer,
so its choices can be held against the crossover measured here.

Per shape and batch: a row per density with the median ms per call of dense and of CSR and the ratio
dense / CSR (above 1: CSR is faster), then the crossover: the density below which CSR beats dense,
interpolated linearly between the two measured densities around the ratio's crossing of 1 (or "none
measured" when CSR wins or loses at every density). The weights are random with a random mask (what
magnitude pruning leaves of a random layer), so the pattern is unstructured. Each repeat times every
(density, form) pair once, in a rotating order; one sample repeats a call until it lasts 5 ms.
Times depend on the machine: run nothing else meanwhile; --threads 1 is steadier on a shared machine.
--quick (two densities, three repeats) checks that the script runs, not what it measures.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn

from workbench.engine import deploy_csr
from workbench.engine.deploy_csr import CsrLinear, to_csr

MIN_SAMPLE_S = 0.005


def sample(fn, x: torch.Tensor, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(x)
    return (time.perf_counter() - start) * 1000 / calls


def layers(out_f: int, in_f: int, density: float, gen: torch.Generator) -> tuple[nn.Linear, CsrLinear]:
    dense = nn.Linear(in_f, out_f)
    with torch.no_grad():
        mask = torch.rand(dense.weight.shape, generator=gen) < density
        dense.weight.mul_(mask)
    return dense.eval(), CsrLinear(to_csr(dense.weight), dense.bias.detach()).eval()


def measure(out_f: int, in_f: int, densities: list[float], batch: int, repeats: int) -> list[tuple]:
    """(density, dense ms, csr ms) per density: medians of interleaved samples."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, in_f, generator=gen)
    pairs = [(d, kind, fn) for d in densities for kind, fn in zip(("dense", "csr"), layers(out_f, in_f, d, gen))]
    with torch.inference_mode():
        calls = []
        for _, _, fn in pairs:
            sample(fn, x, 1)
            calls.append(max(1, math.ceil(MIN_SAMPLE_S * 1000 / max(sample(fn, x, 1), 1e-6))))
        times: dict[tuple, list[float]] = {}
        for r in range(repeats):
            for i in [(r + k) % len(pairs) for k in range(len(pairs))]:
                d, kind, fn = pairs[i]
                times.setdefault((d, kind), []).append(sample(fn, x, calls[i]))
    return [(d, statistics.median(times[d, "dense"]), statistics.median(times[d, "csr"])) for d in densities]


def crossover(rows: list[tuple]) -> str:
    """The density where dense / csr crosses 1, interpolated between measured densities."""
    ratios = [(d, dense / csr) for d, dense, csr in rows]
    for (d0, r0), (d1, r1) in zip(ratios, ratios[1:]):
        if r0 >= 1 > r1:
            return f"{100 * (d0 + (r0 - 1) / (r0 - r1) * (d1 - d0)):.1f}%"
    if all(r >= 1 for _, r in ratios):
        return f"none measured: CSR is faster at every density up to {100 * ratios[-1][0]:g}%"
    if all(r < 1 for _, r in ratios):
        return f"none measured: dense is faster at every density down to {100 * ratios[0][0]:g}%"
    return "no single crossing (noisy: rerun on a quiet machine)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="1024x1024,300x784", help="out x in of each Linear layer")
    ap.add_argument("--densities", default="1,2,5,10,20,30,40,50", help="percent of weights kept")
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--plan", action="store_true", help="also print deploy_csr.plan's choice per layer")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    densities = sorted(float(d) / 100 for d in args.densities.split(","))
    if args.quick:
        densities, args.repeats = [densities[0], densities[-1]], 3
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats} interleaved repeats; "
          f"ratio = dense ms / CSR ms (above 1: CSR faster)")
    for shape in args.shapes.split(","):
        out_f, in_f = (int(v) for v in shape.split("x"))
        for batch in (int(b) for b in args.batches.split(",")):
            rows = measure(out_f, in_f, densities, batch, args.repeats)
            print(f"\nLinear {in_f} -> {out_f}, batch {batch}")
            print(f"{'density':>8} {'dense ms':>10} {'csr ms':>10} {'ratio':>7}")
            for d, dense, csr in rows:
                print(f"{100 * d:>7g}% {dense:>10.4f} {csr:>10.4f} {dense / csr:>7.2f}")
            print(f"crossover (CSR beats dense below): {crossover(rows)}")
        if args.plan:
            batches = [int(b) for b in args.batches.split(",")]
            print(f"\ndeploy_csr.plan, Linear {in_f} -> {out_f}, dense ms / CSR ms at batch "
                  f"{'/'.join(map(str, batches))}")
            gen = torch.Generator().manual_seed(1)
            for d in densities:
                layer, _ = layers(out_f, in_f, d, gen)
                entry = deploy_csr.plan(nn.Sequential(layer), torch.randn(1, in_f), batches)["0"]
                ratios = "/".join(f"{r:.2f}" for r in entry["ratio"].values())
                print(f"{100 * d:>7g}% {ratios:>16} {entry['form']}")


if __name__ == "__main__":
    main()
