"""The run's events on a console: the printer the CLI and the headless demo share, and running a config
with Ctrl-C / SIGTERM ending it as `cancelled` (its file closed and readable)."""

from __future__ import annotations

import signal
import sys
import threading

from workbench.core.config import RunConfig
from workbench.core.events import CancelToken, Evaluated, Finished, Message, Progress, RunStarted
from workbench.engine.runner import execute


class Printer:
    """Prints a run's events on stderr: one line per evaluation point, a progress line (redrawn on a
    terminal, every 10 s otherwise), messages as they come."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last_line = 0.0

    def __call__(self, event) -> None:
        if self.quiet:
            return
        err = sys.stderr
        if isinstance(event, RunStarted):
            print(f"run file {event.run_path}  device {event.device}  {event.total_steps} steps", file=err)
        elif isinstance(event, Message):
            self._clear()
            print(event.text, file=err)
        elif isinstance(event, Progress):
            line = (f"  step {event.step}/{event.total_steps}  loss {event.train_loss:.4f}  "
                    f"lr {event.lr:.3g}  elapsed {_dur(event.elapsed)}  eta {_dur(event.eta)}")
            if self.tty:
                print("\r" + line, end="", file=err, flush=True)
            elif event.elapsed - self.last_line >= 10:
                self.last_line = event.elapsed
                print(line, file=err, flush=True)
        elif isinstance(event, Evaluated):
            self._clear()
            m = event.metrics
            where = event.label if event.label != "epoch" else f"stage {event.stage + 1} epoch {event.epoch}"
            print(f"{where:<22} test acc {100 * m['test_accuracy']:6.2f}%  params {m['param_ratio']:7.1f}x  "
                  f"bits {m['storage_ratio']:7.1f}x", file=err, flush=True)

    def _clear(self) -> None:
        if self.tty:
            print("\r" + " " * 100 + "\r", end="", file=sys.stderr)


def _dur(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}:{seconds % 60:02d}"


def run_with_events(config: RunConfig, printer) -> Finished:
    """Run a config, handing events to `printer`; Ctrl-C cancels cleanly (a second one aborts)."""
    token = CancelToken()

    def on_sigint(signum, frame):
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        what = "terminated" if signum == signal.SIGTERM else "Ctrl-C"
        print(f"\n{what}: cancelling after this batch (again to abort)", file=sys.stderr)

    # SIGTERM (kill, timeout, a batch scheduler) ends the run like Ctrl-C: file closed as cancelled.
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, on_sigint) for sig in handled} if _main_thread() else {}
    try:
        finished = None
        for event in execute(config, token):
            printer(event)
            if isinstance(event, Finished):
                finished = event
        return finished
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
