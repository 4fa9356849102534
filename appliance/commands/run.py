"""`appliance run`: camera, live recognition, teaching buttons and the web page, until SIGTERM / Ctrl-C."""

import argparse
import logging
import signal
import threading
from pathlib import Path

from appliance.vision import backends

log = logging.getLogger("appliance.run")


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the appliance (camera, recognition, buttons, web page)",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="config file (default /etc/appliance/config.toml when present)")
    parser.add_argument("--source", metavar="S",
                        help="picamera | demo | /dev/video0 | 0 | video file | image folder | rtsp:// | http://")
    parser.add_argument("--mode", choices=("classify", "detect"),
                        help="recognise taught classes, or detect objects")
    parser.add_argument("--host", metavar="H", help="web page address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, metavar="P", help="web page port (default 8080)")
    parser.add_argument("--data-dir", type=Path, metavar="D", help="class store and model cache folder")
    parser.add_argument("--device", choices=backends.device_choices(), help="where models run")
    parser.add_argument("--demo", action="store_true",
                        help="demo source, mock buttons, CPU, page on 127.0.0.1:8080, per-user data folder")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the config and exit (0 OK, 2 wrong)")
    parser.add_argument("--no-web", action="store_true", help="do not serve the web page")
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    from appliance.config import apply_overrides, demo_config, load_config

    config = load_config(args.config)
    if args.demo:
        config = demo_config(config, data_dir=args.data_dir)
    return apply_overrides(config, source=args.source, mode=args.mode, host=args.host, port=args.port,
                           data_dir=args.data_dir, device=args.device, web=False if args.no_web else None)


def run(args: argparse.Namespace) -> int:
    if args.check_config:
        from appliance.config import check_config

        build_config(args)  # the flags must be valid too
        print(check_config(args.config))
        return 0
    from appliance.system import System

    config = build_config(args)
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    # SIGHUP (the terminal closed, or `systemctl kill -s HUP`) stops cleanly too: there is nothing to
    # reload in place (a changed config needs the models, camera and server rebuilt), so restart instead
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    system = System(config)
    service = None
    try:
        system.start()
        log.info("serving: %s", system.describe())
        if system.models.warning:
            log.warning("%s", system.models.warning)
        service = _service(system)
        service.ready()
        while not stop.wait(0.5):
            pass
    finally:
        if service is not None:
            service.stopping()
        system.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return 0


def _service(system):
    """sd_notify READY / WATCHDOG / STATUS when running under systemd (no-ops in a terminal)."""
    from appliance.service import Service, status_line

    return Service(system.healthy, lambda: status_line(system.status()))
