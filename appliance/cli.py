"""The `appliance` command: one sub-command per module in appliance.commands.

Each command module defines `register(subparsers)`, which adds its parser and sets `func`.
Errors a user can fix (ApplianceError) are printed to stderr without a traceback, exit code 2.
Without --verbose, log lines are short ("WARNING: ...") and TFLite's INFO chatter is filtered out of
stderr (see stderr_filter); with it, every line shows, with times and logger names.

SIGTERM and SIGHUP (`kill`, a closed terminal) end a command the way Ctrl-C does, unwinding it: the
inference worker a command started on an Edge TPU ignores both (as the service's must), so without the
unwinding a worker hung in the runtime would outlive the command and hold the accelerator.
`appliance run` installs its own handlers (a clean stop of the service).
"""

import argparse
import importlib
import logging
import signal
import sys

from appliance import __version__
from appliance.errors import ApplianceError
from appliance.stderr_filter import StderrFilter

COMMANDS = ("run", "classify", "detect", "teach", "classes", "models", "bench", "doctor", "passwd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance",
        description="A teachable camera appliance: Edge TPU or CPU recognition, teaching, a web page.",
    )
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug messages, with times, and the TFLite runtime's INFO lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"appliance.commands.{name}").register(sub)
    return parser


class Stopped(BaseException):
    """A SIGTERM or SIGHUP arrived: unwind the command (its `with` blocks close what it started)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum, _frame) -> None:
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return _main(argv)
    finally:
        for sig, handler in previous.items():  # main() called from Python (tests) leaves none behind
            signal.signal(sig, handler)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    long_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=long_format if args.verbose else "%(levelname)s: %(message)s")
    quiet = None if args.verbose else StderrFilter().start()
    try:
        return _run(args)
    finally:
        if quiet is not None:
            quiet.stop()


def _run(args) -> int:
    try:
        return int(args.func(args) or 0)
    except ApplianceError as exc:
        print(f"appliance: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Stopped as exc:
        return 128 + exc.signum
    except BrokenPipeError:  # `appliance models list | head`: the reader left, nothing more to say
        sys.stderr.close()
        return 0
