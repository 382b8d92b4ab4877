"""`workbench tune`: an Optuna study over a method's declared knobs, every trial a run file under --out
(engine.tune). cli.py adds the subcommand with `add_parser(subparsers)` and runs it with `run(args)`.

Standard output: one line per trial as it ends (number, params, accuracy, ratio, state, run file);
with --json the last line is one JSON object: the study, its storage, counts, and `best` (the Pareto
front, or the best feasible trial) with their run files.
"""

from __future__ import annotations

import argparse
import json
import sys

from workbench.cli_args import (
    EXIT_ERROR,
    add_ray_flags,
    add_run_settings,
    ray_options_from_args,
    settings_from_args,
    stages_from_args,
)
from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.engine.console import SIGNALS, signal_word
from workbench.engine.tune_objective import OBJECTIVES, parse_objective


def add_parser(subparsers) -> argparse.ArgumentParser:
    t = subparsers.add_parser("tune", help="an Optuna study over a method's knobs: one run file per trial, "
                              "resumable, on Ray when asked")
    t.add_argument("--model", help="a zoo architecture (pretrained and cached if no --checkpoint) or a model file")
    t.add_argument("--checkpoint", help="a trained model file to compress in every trial")
    t.add_argument("--trust-code", action="store_true", help="allow model files that run code (only ones you trust)")
    t.add_argument("--dataset", help="mnist, fashion-mnist, cifar10, tiny, folder:PATH, arrays:PATH (with "
                   "--preset: the preset's own by default)")
    t.add_argument("--method", help="method key, or a pipeline KEY,KEY (its knobs then are "
                   "STAGE.K, e.g. kmeans.bits_fc)")
    t.add_argument("--preset", help="start from a preset (see `workbench presets`): its settings are the base of "
                   "every trial and its own values the study's first trial, so the study shows what beats it")
    t.add_argument("--trials", type=int, required=True, help="finished trials the study should have (a resumed "
                   "study counts the ones it has)")
    t.add_argument("--out", required=True, help="folder for the run files and the study's journal (on a Ray "
                   "cluster: a folder every worker sees at the same path)")
    t.add_argument("--study", help="study name (default MODEL-METHOD-DATASET); the same --out and name resume it")
    t.add_argument("--objective", default="accuracy-ratio", help=f"{' | '.join(OBJECTIVES)} (default "
                   "accuracy-ratio: the Pareto front of accuracy and storage ratio; X in accuracy points)")
    t.add_argument("--space", action="append", default=[], metavar="K=LOW..HIGH[:log]|K=A|B",
                   help="search K over a range or choices (replaces its default range); K alone: its "
                   "declared range")
    t.add_argument("--space-only", action="store_true", help="search only the --space knobs, not the method's "
                   "default ones")
    t.add_argument("--fix", "--set", dest="fix", action="append", default=[], metavar="K=V",
                   help="hold a knob at a value in every trial (out of the space)")
    t.add_argument("--epochs", type=int, help="epochs of every stage in every trial")
    t.add_argument("--sampler", default="tpe", choices=("tpe", "gp"), help="Optuna's sampler (default tpe)")
    t.add_argument("--pruner", default="median", choices=("median", "none"),
                   help="stop trials below the median at the same epoch (single objectives only)")
    add_ray_flags(t, "trials")
    add_run_settings(t)                        # the run settings' flags, --json and --quiet, as `run` has
    return t


def config_from_args(args) -> RunConfig:
    stages, args.model, args.dataset, args.huffman = stages_from_args(args)
    if not args.model and not args.checkpoint:
        raise WorkbenchError("give --model (a zoo architecture) or --checkpoint (a trained model)")
    if not args.dataset:
        raise WorkbenchError("give --dataset (mnist, fashion-mnist, cifar10, tiny, folder:PATH, arrays:PATH)")
    if args.epochs is not None:
        for stage in stages:
            stage.train["epochs"] = args.epochs
    settings = settings_from_args(args)
    return RunConfig(dataset=args.dataset, stages=stages, model=args.model, checkpoint=args.checkpoint,
                     out_dir=args.out, trust_code=args.trust_code, preset=getattr(args, "preset", None),
                     **settings)


def run(args) -> int:
    from workbench.core.events import CancelToken
    from workbench.engine.tune import Tuner, format_trial
    from workbench.engine.tune_space import build_space

    config = config_from_args(args)
    space = build_space(config, args.space, args.fix, defaults=not args.space_only)
    ray = ray_options_from_args(args)
    start = [space.values_of(config)] if args.preset else None     # trial 0: the preset as it ships
    tuner = Tuner(config, space, args.trials, parse_objective(args.objective), args.out, name=args.study,
                  sampler=args.sampler, pruner=args.pruner, ray=ray, enqueue=start)
    if not args.quiet:
        print(f"study {tuner.name} in {tuner.out} ({tuner.objective.text}, {args.trials} trials"
              f"{', on Ray ' + args.ray if args.ray else ''}): " + " ".join(space.describe()), file=sys.stderr)

    def progress(result) -> None:
        if not args.quiet:
            print(format_trial(result), flush=True)

    token = SIGNALS.token = CancelToken()       # Ctrl-C / SIGTERM: the running trials end cancelled
    try:
        study = tuner.run(progress=progress, cancel=token)
    finally:
        SIGNALS.token = None
    if args.json:
        print(json.dumps(study.to_json()))
    elif study.best:
        print("best: " + ", ".join(f"trial {t.number} ({t.run})" for t in study.best))
    if token.cancelled:
        print(f"{signal_word(SIGNALS.received)}; study {tuner.name} kept in {tuner.storage_path} (the same "
              "command resumes it)", file=sys.stderr)
        return SIGNALS.exit_code
    failed = [t for t in study.trials if t.state == "failed"]
    if study.trials and len(failed) == len(study.trials):
        print(f"error: every trial failed; the first: {failed[0].error}", file=sys.stderr)
        return EXIT_ERROR
    if not args.json and not study.best:
        print("no trial is complete and within the objective's bound", file=sys.stderr)
    return 0
