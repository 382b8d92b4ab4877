"""The command line's training and run commands: `workbench train`, `workbench run` (one run, or
`--repeats N` over seeds) and the config they build from the flags (`--set` routed into the stages)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from workbench.cli_args import EXIT_ERROR, ray_options_from_args, settings_from_args, stages_from_args
from workbench.core import params as P
from workbench.core.config import RunConfig, StageConfig, TrainParams
from workbench.core.errors import WorkbenchError
from workbench.core.events import CancelToken
from workbench.engine.console import SIGNALS, Printer, run_with_events, signal_word

TRAIN_SETTINGS = ("device", "seed", "train_subset", "test_subset", "data_dir")   # what `train` uses


# --- training and runs ---------------------------------------------------------------------------

def _route_sets(stages: list[StageConfig], assignments: dict[str, str]) -> None:
    """Put `--set` values into the stages: `STAGE.K=V` into one stage, `K=V` into the stage whose method
    has knob K (it must be unambiguous) or, for training knobs, into every stage. Unknown names fail."""
    from workbench.methods import get_method

    train_names = {s.name for s in P.specs(TrainParams)}
    knobs = [{s.name for s in P.specs(get_method(stage.method).Params)} for stage in stages]
    label = "+".join(stage.method for stage in stages)
    for name, value in assignments.items():
        where, dot, key = name.rpartition(".")
        if dot:
            matches = [i for i, st in enumerate(stages) if where in (st.method, str(i + 1))]
            if len(matches) != 1:
                raise WorkbenchError(f"--set {name}: {where!r} is not one stage of {label} (use the method "
                                     f"key or the stage number 1..{len(stages)})")
            targets = matches
        else:
            key = name
            targets = [i for i, names in enumerate(knobs) if key in names]
            if len(targets) > 1:
                raise WorkbenchError(f"--set {name}: several stages of {label} have {key!r}; write "
                                     f"STAGE.{key}=... with the stage's method key or number")
            if not targets and key in train_names:
                targets = list(range(len(stages)))
        placed = False
        for i in targets:
            if key in knobs[i]:
                stages[i].params[key] = value
                placed = True
            elif key in train_names:
                stages[i].train[key] = value
                placed = True
        if not placed:
            raise WorkbenchError(f"unknown parameter {name!r} for {label}; see `workbench methods`")


def config_from_args(args) -> RunConfig:
    from workbench.engine.configure import complete  # imports torch: after main's signal handlers

    stages, model, dataset, huffman = stages_from_args(args)
    if not dataset:
        raise WorkbenchError("give --dataset (e.g. mnist)")
    if not model and not args.checkpoint:
        raise WorkbenchError("give --model (a zoo architecture) or --checkpoint (a trained model)")
    _route_sets(stages, P.parse_assignments(args.set))
    if args.epochs is not None:
        for stage in stages:
            stage.train["epochs"] = args.epochs
    settings = settings_from_args(args)
    settings["huffman"] = huffman
    config = RunConfig(dataset=dataset, stages=stages, model=model, checkpoint=args.checkpoint,
                       out_dir=args.out, name=args.name, preset=args.preset,
                       trust_code=args.trust_code, **settings)
    return complete(config)


def cmd_run(args) -> int:
    if args.repeats is not None or args.repeat_references:
        return cmd_repeats(args)
    if getattr(args, "ray", None):
        raise WorkbenchError("--ray runs repeats: give --repeats N (a single run runs here)")
    config = config_from_args(args)
    finished = run_with_events(config, Printer(args.quiet))
    s = finished.summary
    result = {"run": finished.run_path, "status": finished.status, "error": finished.error,
              "test_accuracy": s.get("test_accuracy"), "reference_accuracy": s.get("reference_accuracy"),
              "param_ratio": s.get("param_ratio"), "storage_ratio": s.get("storage_ratio"),
              "bits": s.get("bits"), "wall_seconds": s.get("wall_seconds"),
              "step_seconds": s.get("step_seconds")}
    if args.json:
        print(json.dumps(_finite(result)))
    elif finished.status == "completed":
        print(f"{finished.run_path}: test accuracy {100 * s['test_accuracy']:.2f}% "
              f"(reference {100 * s['reference_accuracy']:.2f}%), {s['param_ratio']:.1f}x parameters, "
              f"{s['storage_ratio']:.1f}x storage bits")
    if finished.status == "failed":
        if finished.run_path and finished.run_path in finished.error:    # e.g. "disk full: could not write
            print(f"error: {finished.error}", file=sys.stderr)            # RUN.h5 (...); N points kept"
        else:
            print(f"error: run failed: {finished.error} (partial results kept in {finished.run_path})",
                  file=sys.stderr)
        return EXIT_ERROR
    if finished.status == "cancelled":     # only a signal cancels a CLI run
        what = signal_word(SIGNALS.received)
        print(f"{what}; run file kept: {finished.run_path} (cancelled)" if finished.run_path else
              f"{what} before the run started", file=sys.stderr)
        return SIGNALS.exit_code
    return 0


def cmd_repeats(args) -> int:
    """`run --repeats N`: the repeats one after another, a line as each ends, then mean ± std."""
    from workbench.engine.repeats import format_repeat, format_summary, run_repeats, summarize

    if args.repeats is None:
        raise WorkbenchError("--repeat-references needs --repeats N")
    config = config_from_args(args)
    out = sys.stderr if args.json else sys.stdout        # with --json, the last line is the JSON alone

    def done(repeat, total):
        if not args.quiet or not args.json:
            print(format_repeat(repeat, total), file=out, flush=True)

    ray = ray_options_from_args(args)
    if ray is None:
        repeats = run_repeats(config, args.repeats, args.repeat_references, Printer(args.quiet), done)
    else:
        from workbench.engine.repeats_ray import run_repeats_ray

        repeats = run_repeats_ray(config, args.repeats, args.repeat_references, ray, Printer(args.quiet), done)
    summary = summarize(repeats, args.repeats)
    if args.json:
        print(json.dumps({"runs": [_finite(r.as_dict()) for r in repeats], "summary": summary}))
    else:
        print(format_summary(summary))
    failed = [r for r in repeats if r.status == "failed"]
    if any(r.status == "cancelled" for r in repeats):
        print(f"{signal_word(SIGNALS.received)}: the remaining repeats were not run", file=sys.stderr)
        return SIGNALS.exit_code
    if failed:
        print(f"error: {len(failed)} of {args.repeats} repeats failed: {failed[0].error}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _finite(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def cmd_train(args) -> int:
    from workbench.core.devices import describe, pick_device
    from workbench.engine.reference import pretrain, recipe
    from workbench.engine.runner import load_data
    from workbench.models import architecture, zoo
    from workbench.models import checkpoint as ckpt

    out = Path(args.out)
    if out.is_dir():
        raise WorkbenchError(f"--out {out} is a folder; give a file name such as {out / 'reference.pt'}")
    values = P.parse_assignments(args.set)
    if args.epochs is not None:
        values["epochs"] = args.epochs
    train = P.build(TrainParams, {**P.to_dict(recipe(args.model)), **values})
    config = RunConfig(dataset=args.dataset, stages=[], model=args.model,
                       **settings_from_args(args, TRAIN_SETTINGS))
    dataset = load_data(config)
    device = pick_device(config.device)
    import torch

    torch.manual_seed(config.seed)
    user = architecture.is_model_file(args.model)
    if user:           # a user's architecture: fresh weights from its file (Python only with the opt-in)
        arch = architecture.parse_model_spec(args.model)
        model = architecture.build(arch, dataset.input_shape, dataset.num_classes, allow_code=args.trust_code).module
        architecture.check_fits(model, tuple(dataset.input_shape), dataset.num_classes, dataset.name, arch.label)
    else:
        model = zoo.build_model(args.model, dataset.input_shape, dataset.num_classes)
    printer = Printer(args.quiet)
    if not args.quiet:
        print(f"pretraining {args.model} on {dataset.name} ({dataset.source}) for {train.epochs} epochs "
              f"on {describe(device)}", file=sys.stderr)
    token = CancelToken()
    gen = pretrain(model, dataset, train, device, token, config.seed)
    while True:
        try:
            printer(next(gen))
        except StopIteration as stop:
            accuracy = stop.value
            break
    if user:           # plain tensors and values: the weights for `run --model FILE --checkpoint OUT`
        ckpt.save_tensors(out, {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                                "model_spec": args.model, "dataset": dataset.name, "test_accuracy": float(accuracy),
                                "recipe": json.dumps(P.to_dict(train)), "seed": config.seed})
    else:
        ckpt.save_reference(out, model.cpu(), model_key=args.model, input_shape=dataset.input_shape,
                            num_classes=dataset.num_classes, dataset=dataset.name, test_accuracy=accuracy,
                            extra={"recipe": json.dumps(P.to_dict(train)), "seed": config.seed})
    result = {"checkpoint": str(out), "model": args.model, "dataset": dataset.name,
              "test_accuracy": accuracy}
    print(json.dumps(result) if args.json else
          f"saved {out}: {args.model} on {dataset.name}, test accuracy {100 * accuracy:.2f}%")
    return 0
