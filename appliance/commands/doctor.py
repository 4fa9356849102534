"""`appliance doctor [--json]`: one line per check (ok / warn / fail) with the fix; exit 1 when one fails."""

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("doctor", help="check the runtime, Edge TPU, camera, GPIO, models, ...",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="config file (default /etc/appliance/config.toml when present)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from appliance import doctor

    checks = doctor.run_checks(doctor.gather_facts(args.config))
    if args.json:
        print(json.dumps({"ok": doctor.exit_code(checks) == 0, "checks": [c._asdict() for c in checks]},
                         indent=2))
    else:
        for check in checks:
            print(doctor.format_check(check))
        counts = {s: sum(c.status == s for c in checks) for s in ("ok", "warn", "fail")}
        print(f"\n{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failing")
    return doctor.exit_code(checks)
