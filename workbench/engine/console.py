"""The run's events on a console: the printer the CLI and the headless demo share, and what SIGINT
(Ctrl-C) and SIGTERM (kill, timeout, a batch scheduler) do to a console command.

`SIGNALS` is installed by the CLI first thing, before the slow imports (torch), so no signal goes
unanswered. While a run is going, a signal cancels it after the current batch: its file is closed and
marked `cancelled`; a second signal aborts at once (the file still marked `cancelled`). At any other
moment (start-up, a command that is not a run) a signal ends the command at once by raising Interrupted.
The CLI then ends with one line and exit status 128 + the signal (130 SIGINT, 143 SIGTERM).
This module is light to import (no torch) for that reason: the run loop is imported when a run starts.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from workbench.core.config import RunConfig
from workbench.core.events import CancelToken, Evaluated, Finished, Message, Progress, RunStarted

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A signal ended the command. A KeyboardInterrupt, so no `except Exception` on the way swallows it
    (the run loop records its file as cancelled and re-raises it with `run_path` set)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_word(signum: int | None) -> str:
    return "terminated" if signum == signal.SIGTERM else "interrupted"


class Signals:
    """The process's SIGINT / SIGTERM handler for console commands (see the module docstring)."""

    def __init__(self) -> None:
        self.received: int | None = None      # the last signal that arrived
        self.token: CancelToken | None = None  # the running run's, while there is one
        self._previous: dict = {}

    def install(self) -> bool:
        """Take over SIGINT and SIGTERM; False (nothing done) when already installed or not possible here
        (signal handlers belong to the main thread)."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return False
        self.received = None
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in HANDLED}
        return True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    @property
    def exit_code(self) -> int:
        return 128 + (self.received or signal.SIGINT)

    def _on_signal(self, signum, frame) -> None:
        self.received = signum
        token = self.token
        if token is None or token.cancelled:
            raise Interrupted(signum)
        token.cancel()
        what = "terminated" if signum == signal.SIGTERM else "Ctrl-C"
        # os.write, not print: the handler may run inside a print to stderr, which must not be re-entered
        os.write(2, f"\n{what}: cancelling after this batch (again to abort)\n".encode())


SIGNALS = Signals()


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
    """Run a config, handing events to `printer`; SIGINT / SIGTERM cancel it cleanly (a second one aborts
    with Interrupted). Installs SIGNALS for the run where the CLI has not already."""
    # imported here: torch takes seconds, and the CLI's signal handlers must be in place before that
    from workbench.engine.runner import execute

    own = SIGNALS.install()
    token = SIGNALS.token = CancelToken()
    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        # Over `ulimit -f`, a write then fails (EFBIG) and the run ends `failed` with one line, instead of
        # the process being killed by SIGXFSZ with its file half written.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        finished = None
        for event in execute(config, token):
            printer(event)
            if isinstance(event, Finished):
                finished = event
        return finished
    finally:
        SIGNALS.token = None
        if own:
            SIGNALS.restore()
