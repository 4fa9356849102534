"""`appliance passwd`: print a password hash to put in the config as web.password_hash.

The password is read from a terminal prompt (typed twice, not echoed) or, when stdin is not a
terminal, from the first line of stdin (`echo secret | appliance passwd`). Only the hash is printed.
"""

import argparse
import getpass
import sys

from appliance.errors import ApplianceError


def read_password(stdin=None) -> str:
    """The new password from a tty prompt (asked twice) or the first line of a piped stdin."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        first = getpass.getpass("New web password: ")
        second = getpass.getpass("Again: ")
        if first != second:
            raise ApplianceError("the two passwords differ", "run `appliance passwd` again and type it twice")
        return first
    return stdin.readline().rstrip("\r\n")


def run(args: argparse.Namespace) -> int:
    from appliance.web.auth import hash_password

    password = read_password()
    if not password:
        raise ApplianceError("no password given",
                             "type a password, or pipe one: echo 'secret' | appliance passwd")
    print(hash_password(password))
    print(
        "put this in the config's [web] section as password_hash = \"...\" and restart the appliance",
        file=sys.stderr,
    )
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("passwd", help="print a hash of a web page password for the config",
                                   description=__doc__.splitlines()[0])
    parser.set_defaults(func=run)
