"""What the command line's subcommands share: the run settings' flags made from their one declaration,
the parser whose errors are one line, the Ray flags of `tune` and `run --repeats`, and the exit codes
(cli.py and tune_cli.py both build on these)."""

from __future__ import annotations

import argparse

from workbench.core import params as P
from workbench.core.config import SETTINGS, RunSettings, StageConfig
from workbench.core.errors import WorkbenchError

# Exit status: 2 bad input or a failed run (e.g. disk full); 128 + the signal for a run ended by one
# (130 SIGINT / Ctrl-C, 143 SIGTERM).
EXIT_ERROR, EXIT_CANCELLED, EXIT_TERMINATED = 2, 130, 143


def add_run_settings(p: argparse.ArgumentParser, settings=SETTINGS) -> None:
    """The run settings' flags, made from their one declaration (core.config.RunSettings); values are
    read by params.build, so a bad one gets the same one-line message as in the app."""
    for spec in P.specs(RunSettings):
        if spec.name not in settings:
            continue
        flag, k = "--" + spec.name.replace("_", "-"), spec.knob
        default = P.format_value(spec.default)
        if k.special and spec.default == k.min:
            default = f"{default}, {k.special}"             # 0 = all samples, 0 = the recipe
        help_text = k.help + (f" (default: {default})" if spec.type is not bool and spec.default != "" else "")
        if spec.type is bool:
            p.add_argument(flag, action="store_true", default=None, help=help_text)
        else:
            metavar = "{" + ",".join(k.choices) + "}" if k.choices else "N" if spec.type is int else "PATH"
            p.add_argument(flag, default=None, metavar=metavar, help=help_text)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def stages_from_args(args) -> tuple[list[StageConfig], str | None, str | None, bool]:
    """(stages, model, dataset, huffman) from --preset or --method, as `run` and `tune` read them: a
    preset gives its stages, and its model (unless --checkpoint brings one), data set and Huffman coding
    where the flags do not; --method with a preset must name the preset's own."""
    if getattr(args, "preset", None):
        from workbench.core.presets import get_preset, preset_stages

        preset = get_preset(args.preset)
        if args.method and args.method.replace(",", "+").replace(" ", "") != preset["method"]:
            raise WorkbenchError(f"preset {args.preset} is for {preset['method']}, not {args.method}")
        model = args.model or (None if args.checkpoint else preset.get("model"))
        return (preset_stages(args.preset), model, args.dataset or preset.get("dataset"),
                bool(args.huffman or preset.get("huffman")))
    if not args.method:
        raise WorkbenchError("give --method KEY or --preset NAME (see `workbench methods`, `workbench presets`)")
    stages = [StageConfig(key.strip()) for key in args.method.replace("+", ",").split(",") if key.strip()]
    if not stages:
        raise WorkbenchError("give --method KEY (see `workbench methods`)")
    return stages, args.model, args.dataset, bool(args.huffman)


def settings_from_args(args, names=SETTINGS) -> dict:
    """The run settings given on the command line, checked against their declaration, defaults filled."""
    given = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    values = P.to_dict(P.build(RunSettings, given))
    return {n: values[n] for n in names}


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        # one line, as every other bad input: argparse's usage block made a typo a screenful
        self.exit(EXIT_ERROR, f"error: {message} (see {self.prog} --help)\n")


def add_ray_flags(p: argparse.ArgumentParser, what: str) -> None:
    """--ray, --workers, --gpus-per-trial, --retries: where `what` (trials, repeats) run on Ray."""
    p.add_argument("--ray", metavar="local|ADDRESS", help=f"run the {what} as Ray tasks: `local` starts Ray here, "
                   "else a cluster's address (--out then a folder every worker sees at the same path)")
    p.add_argument("--workers", type=int, default=0, help="--ray local: CPUs, one run each (default: all)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="--ray: GPUs given to each run")
    p.add_argument("--retries", type=int, default=1, help="--ray: reruns of a run whose worker died")


def ray_options_from_args(args):
    """RayOptions from the Ray flags, or None without --ray; one line for a negative count."""
    if not args.ray:
        return None
    from workbench.core.errors import WorkbenchError
    from workbench.engine.tune import RayOptions

    if args.workers < 0 or args.gpus_per_trial < 0 or args.retries < 0:
        raise WorkbenchError("--workers, --gpus-per-trial and --retries cannot be negative")
    return RayOptions(args.ray, args.workers, args.gpus_per_trial, args.retries)
