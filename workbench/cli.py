"""Headless command line over the same core as the GUI (contract in DESIGN.md)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from workbench import __version__, tune_cli
from workbench.cli_args import (
    EXIT_ERROR,
    add_ray_flags,
)
from workbench.cli_args import OneLineParser as _Parser
from workbench.cli_args import add_run_settings as _common
from workbench.cli_run import TRAIN_SETTINGS, _finite, cmd_run, cmd_train, config_from_args  # noqa: F401 - tests use it
from workbench.core import params as P
from workbench.core.config import TrainParams
from workbench.core.errors import WorkbenchError
from workbench.core.events import Cancelled, CancelToken
from workbench.engine.console import SIGNALS, signal_word


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="workbench", description="Compress neural networks and compare compression methods "
                 "side by side.")
    ap.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = ap.add_subparsers(dest="command", parser_class=_Parser)
    g = sub.add_parser("gui", help="open the desktop app")
    g.add_argument("runs", nargs="*")
    m = sub.add_parser("methods", help="list methods and their parameters")
    m.add_argument("--json", action="store_true")
    pr = sub.add_parser("presets", help="list stored presets; NAME: one in full; promote RUN.h5 NAME: save a "
                        "finished run's settings as your own preset")
    pr.add_argument("words", nargs="*", metavar="NAME | promote RUN.h5 NAME",
                    help="a preset's name to show it in full, or `promote RUN.h5 NAME`")
    pr.add_argument("--show", metavar="NAME", help="show one preset in full (as `workbench presets NAME`)")
    pr.add_argument("--description", default="", help="promote: the new preset's description")
    pr.add_argument("--replace", action="store_true", help="promote: replace a user preset of that name")
    pr.add_argument("--json", action="store_true")

    t = sub.add_parser("train", help="pretrain a reference model")
    t.add_argument("--model", required=True, help="a zoo architecture, a .pt2 / ONNX file, or FILE.py:NAME")
    t.add_argument("--dataset", required=True)
    t.add_argument("--epochs", type=int)
    t.add_argument("--set", action="append", default=[], metavar="K=V", help="training knob")
    t.add_argument("--out", required=True)
    t.add_argument("--trust-code", action="store_true",
                   help="--model is FILE.py:NAME: allow running it (only for code you trust)")
    _common(t, TRAIN_SETTINGS)

    r = sub.add_parser("run", help="compress a model with a method (or a preset pipeline)")
    r.add_argument("--model", help="a zoo architecture (pretrained and cached if no --checkpoint), a "
                   "torch.export .pt2 or ONNX file (read without running anything in it), or FILE.py:NAME "
                   "(a class or function returning the module: runs your code, needs --trust-code)")
    r.add_argument("--checkpoint", help="a trained model file (state_dict, safetensors, reference, .pt2; "
                   "TorchScript with --trust-code); with a model file: its weights")
    r.add_argument("--trust-code", "--trust-checkpoint", dest="trust_code", action="store_true",
                   help="allow loading files that run code when loaded: pickled Python objects, TorchScript "
                   "(only for files you trust; --trust-checkpoint is its old name)")
    r.add_argument("--dataset", help="mnist, fashion-mnist, cifar10, tiny, folder:PATH, arrays:PATH")
    r.add_argument("--method", help="method key (see `workbench methods`), or a pipeline of stages run "
                   "in order: magnitude,kmeans (Deep Compression: add --huffman)")
    r.add_argument("--preset", help="preset name (see `workbench presets`)")
    r.add_argument("--set", action="append", default=[], metavar="K=V",
                   help="method or training knob; in a pipeline STAGE.K=V sets one stage (STAGE: its "
                   "method key or 1-based number), and training knobs without a stage set every stage")
    r.add_argument("--epochs", type=int, help="epochs of every stage (one stage: `--set 2.epochs=N`)")
    r.add_argument("--out", default="runs", help="folder for the run file")
    r.add_argument("--name", help="run file name (without .h5)")
    r.add_argument("--repeats", type=int, metavar="N", help="run N times with seeds S, S+1, ... (one run file "
                   "each, NAME-s<seed>), then print mean ± std of the results; all start from the first "
                   "seed's reference")
    r.add_argument("--repeat-references", action="store_true", help="with --repeats: each repeat starts "
                   "from its own reference, pretrained with its seed (zoo models; cached)")
    add_ray_flags(r, "repeats (with --repeats)")
    _common(r)

    c = sub.add_parser("compare", help="side-by-side table of finished runs")
    c.add_argument("runs", nargs="+")
    c.add_argument("--no-group", action="store_true", help="one row per run (by default runs that differ "
                   "only in their seed are one row: mean ± std, n)")
    c.add_argument("--json", action="store_true")

    e = sub.add_parser("export", help="write a checkpoint from a run file")
    e.add_argument("run")
    e.add_argument("--format", required=True, choices=("compact", "dense", "onnx", "pt2"),
                   help="compact: the accounted small file; dense: safetensors + JSON; onnx; pt2: a "
                   "torch.export archive (for a model brought as .pt2, the format it came in)")
    e.add_argument("--out", required=True)
    e.add_argument("--coding", choices=("run", "fixed", "huffman"), default="run",
                   help="compact only: index/code coding; 'run' follows the run's own --huffman setting")
    e.add_argument("--trust-code", action="store_true",
                   help="the run's model is Python code (FILE.py:NAME): allow running it to rebuild the model")
    e.add_argument("--json", action="store_true")

    dp = sub.add_parser("deploy", help="measure what a run's compressed model costs where it runs: each form "
                        "(dense, the method's own, CSR, onnxruntime, int8) against the reference, interleaved")
    dp.add_argument("run")
    dp.add_argument("--batch", default="1,32,256", help="batch sizes: latency at the smallest, throughput at "
                    "the others (default 1,32,256)")
    dp.add_argument("--threads", type=int, help="torch and onnxruntime intra-op threads (default: torch's)")
    dp.add_argument("--forms", help="comma-separated forms to measure (reference and dense always are)")
    dp.add_argument("--device", choices=("cpu", "cuda", "all"), default="cpu")
    dp.add_argument("--repeats", type=int, default=15, help="interleaved repeats; the median is reported")
    dp.add_argument("--eval-samples", type=int, default=2000, help="test images for each form's accuracy")
    dp.add_argument("--no-store", action="store_true", help="do not keep the report in the run file")
    dp.add_argument("--trust-code", action="store_true",
                    help="the run's model is Python code (FILE.py:NAME): allow running it to rebuild the model")
    dp.add_argument("--json", action="store_true", help="print the report as one JSON object, last line")

    d = sub.add_parser("demo", help="demo: LeNet-300-100 pruned by both papers' methods, in the app (or "
                       "headless where there is no display)")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--quick", action="store_true", help="short schedules (about a minute)")
    d.add_argument("--data-dir")
    d.add_argument("--headless", action="store_true", help="never open the app; print the table")
    tune_cli.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    command = words[0] if words else "gui"          # for the signal's line until the parser has run
    installed = False
    try:
        # First thing: SIGINT / SIGTERM answered with one line from here on (engine/console.py), also in
        # the seconds of imports and data loading before a run starts (the commands import torch later).
        installed = SIGNALS.install()
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as done:          # --help, --version, or the one-line error of _Parser
            return done.code if isinstance(done.code, int) else EXIT_ERROR
        command = args.command or "gui"
        if command in ("gui", "demo") and installed:
            SIGNALS.restore()               # the app keeps Qt's own handling; the demo run installs its own
            installed = False
        return COMMANDS[command](args)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:        # a signal (console.Interrupted) or Ctrl-C outside a run
        signum = getattr(exc, "signum", signal.SIGINT)
        kept = getattr(exc, "run_path", None)      # set by the run loop once the file is closed
        what = signal_word(signum)
        print(f"{what}; run file kept: {kept} (cancelled)" if kept else f"{what} before the run started"
              if command == "run" else f"{what}; no checkpoint written" if command == "train" else what,
              file=sys.stderr)
        return 128 + signum
    finally:
        if installed:
            SIGNALS.restore()


# --- listings ------------------------------------------------------------------------------------

def cmd_methods(args) -> int:
    from workbench.methods import get_method, method_keys

    items = []
    for key in method_keys():
        cls = get_method(key)
        items.append({"key": key, "label": cls.label, "summary": cls.summary, "paper": cls.paper,
                      "params": P.describe(cls.Params)})
    if args.json:
        print(json.dumps({"methods": items, "train": P.describe(TrainParams)}))
        return 0
    for item in items:
        print(f"{item['key']:<12}{item['label']}\n{'':<12}{item['summary']}")
        for spec in item["params"]:
            rng = "" if spec["min"] is None else f" [{spec['min']:g}..{spec['max']:g}]"
            choices = f" {{{', '.join(spec['choices'])}}}" if spec["choices"] else ""
            print(f"{'':<14}{spec['name']:<16}= {spec['default']!s:<10}{rng}{choices}  {spec['help']}")
    print("training knobs (every method): " + ", ".join(s["name"] for s in P.describe(TrainParams)))
    return 0


def cmd_presets(args) -> int:
    from workbench.core.preset_text import describe, spread_text
    from workbench.core.presets import get_preset, is_user_preset, list_presets, preset_file, preset_warnings

    words = list(args.words)
    if words and words[0] == "promote":
        return _promote(args, words[1:])
    if len(words) > 1 or (words and args.show):
        raise WorkbenchError("presets: give one preset NAME to show, or `promote RUN.h5 NAME`; got "
                             + " ".join(words + ([args.show] if args.show else [])))
    if args.description or args.replace:
        raise WorkbenchError("presets: --description and --replace go with `promote RUN.h5 NAME`")
    for line in preset_warnings():
        print(f"warning: {line}", file=sys.stderr)
    name = args.show or (words[0] if words else None)
    if name:
        preset = get_preset(name)
        if args.json:
            print(json.dumps(preset))
        else:
            where = f"{'user' if is_user_preset(name) else 'shipped'} preset, {preset_file(name)}"
            print(describe(preset, where))
        return 0
    presets = list_presets()
    if args.json:
        print(json.dumps(presets))
        return 0
    for p in presets:
        print(f"{p['name']:<34}{p['method']:<18}{p['model']:<10}{spread_text(p):<40} {p.get('source', '')}"
              .rstrip())
    return 0


def _promote(args, words: list[str]) -> int:
    from workbench.engine.promote import promote

    if len(words) != 2:
        raise WorkbenchError("presets promote: give RUN.h5 NAME (a finished run file and the new preset's name)")
    preset, path = promote(words[0], words[1], args.description, replace=args.replace)
    if args.json:
        print(json.dumps({"name": preset["name"], "path": str(path), "preset": preset}))
    else:
        print(f"saved preset {preset['name']} to {path}")
        if preset.get("needs_reference"):
            print(f"note: it needs its reference: {preset['needs_reference']}")
    return 0


# --- results -------------------------------------------------------------------------------------

def cmd_compare(args) -> int:
    from workbench.engine.compare import compare_rows, format_groups, format_table, group_rows

    rows = compare_rows(args.runs)
    groups = None if args.no_group else group_rows(rows)
    if args.json:
        print(json.dumps({"runs": [_finite(r) for r in rows], **({"groups": [_finite(g) for g in groups]}
                                                                  if groups is not None else {})}))
    elif groups is not None and len(groups) < len(rows):       # some runs are repeats of one another
        print(format_groups(groups, rows))
    else:
        print(format_table(rows))
    return 0


def cmd_export(args) -> int:
    from workbench.engine.export import export_run

    result = export_run(args.run, args.format, args.out,
                        huffman={"run": None, "fixed": False, "huffman": True}[args.coding],
                        trust_code=args.trust_code)
    info = {"path": str(result.path), "format": args.format, "size_bytes": result.size_bytes,
            "accounted_bytes": result.accounted_bytes, "header_bytes": result.header_bytes}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"wrote {result.path}: {result.size_bytes} bytes on disk; accounting says "
              f"{result.accounted_bytes:.0f} bytes + {result.header_bytes} bytes of header")
    return 0


def cmd_deploy(args) -> int:
    from workbench.engine.deploy import deploy
    from workbench.engine.deploy_report import format_table, store_report

    def progress(done: int, total: int, text: str) -> None:
        if not args.json:
            print(f"[{done}/{total}] {text}", file=sys.stderr, flush=True)

    token = SIGNALS.token = CancelToken()          # Ctrl-C / SIGTERM end the measurement, nothing stored
    try:
        report = deploy(args.run, batches=args.batch.split(","), threads=args.threads, device=args.device,
                        forms=args.forms.split(",") if args.forms else None, repeats=args.repeats,
                        eval_samples=args.eval_samples, trust_code=args.trust_code, progress=progress,
                        cancel=token)
    except Cancelled:
        print(f"{signal_word(SIGNALS.received or signal.SIGINT)}: deployment measurement cancelled; nothing "
              "stored", file=sys.stderr)
        return SIGNALS.exit_code
    finally:
        SIGNALS.token = None
    if not args.no_store:
        store_report(args.run, report)
    print(json.dumps(json.loads(report.to_json())) if args.json else format_table(report))
    return 0


def cmd_gui(args) -> int:
    from workbench.gui.app import has_display, run_app

    if not has_display():
        raise WorkbenchError("no display to open the app on (DISPLAY is not set); use the CLI, e.g. "
                             "`workbench demo`, or run under xvfb-run")
    return run_app(list(getattr(args, "runs", []) or []))


def cmd_demo(args) -> int:
    from workbench.engine.demo import pick_dataset, run_demo

    if not args.headless:
        from workbench.gui.app import has_display, run_app

        if has_display():
            return run_app(demo_dataset=pick_dataset(args.data_dir), data_dir=args.data_dir)
        print("no display: running the demo comparison headless", file=sys.stderr)
    return run_demo(args.out, quick=args.quick, data_dir=args.data_dir)


COMMANDS = {"gui": cmd_gui, "methods": cmd_methods, "presets": cmd_presets, "train": cmd_train,
            "run": cmd_run, "compare": cmd_compare, "export": cmd_export, "deploy": cmd_deploy,
            "demo": cmd_demo, "tune": tune_cli.run}


def entry() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())


if __name__ == "__main__":
    entry()
